#include "lib/log.h"

#include "lib/error.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define LOG_LINE_MAX 2048

static enum hk_log_target log_target = HK_LOG_STDERR;
static enum hk_log_level log_min = HK_LOG_INFO;
static void (*log_sink)(enum hk_log_level, const char *, void *);
static void *log_sink_ctx;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "notice", "warning", "err"};

void hk_log_init(const char *ident, enum hk_log_target target, enum hk_log_level min)
{
	log_target = target;
	log_min = min;
	if (target == HK_LOG_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void hk_log_set_level(enum hk_log_level min)
{
	log_min = min;
}

int hk_log_level_parse(const char *s, enum hk_log_level *level_r)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level_r = (enum hk_log_level)i;
			return 0;
		}
	}
	return HK_ERR_INVAL;
}

void hk_log_set_sink(void (*fn)(enum hk_log_level, const char *, void *), void *ctx)
{
	pthread_mutex_lock(&log_lock);
	log_sink = fn;
	log_sink_ctx = ctx;
	pthread_mutex_unlock(&log_lock);
}

/* Replaces control characters so one call is always one line. */
static void escape_controls(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void hk_logv(enum hk_log_level level, const char *fmt, va_list ap)
{
	if (level < log_min)
		return;
	char line[LOG_LINE_MAX];
	vsnprintf(line, sizeof(line), fmt, ap);
	escape_controls(line);

	pthread_mutex_lock(&log_lock);
	if (log_sink != NULL) {
		log_sink(level, line, log_sink_ctx);
	} else if (log_target == HK_LOG_SYSLOG) {
		static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};
		syslog(prio[level], "%s", line);
	} else {
		struct timespec ts;
		struct tm tm;
		char stamp[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s: %s\n", stamp, ts.tv_nsec / 1000000,
			level_names[level], line);
	}
	pthread_mutex_unlock(&log_lock);
}

void hk_log(enum hk_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	hk_logv(level, fmt, ap);
	va_end(ap);
}
