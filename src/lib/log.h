/* Leveled logging to stderr or syslog.
 *
 * Secrets have no path into the log: the guarded secret type
 * (crypto/secmem.h) is opaque and has no formatting helper, and callers log
 * identifiers (account id, device id, username) only. Log lines are built in
 * a bounded stack buffer, control characters in the formatted message are
 * escaped so that untrusted input (usernames, server text) cannot forge
 * lines. */
#ifndef HK_LOG_H
#define HK_LOG_H

#include <stdarg.h>

enum hk_log_level { HK_LOG_DEBUG, HK_LOG_INFO, HK_LOG_NOTICE, HK_LOG_WARNING, HK_LOG_ERR };

enum hk_log_target { HK_LOG_STDERR, HK_LOG_SYSLOG };

/* Messages below min are dropped. ident is used for syslog. */
void hk_log_init(const char *ident, enum hk_log_target target, enum hk_log_level min);
void hk_log_set_level(enum hk_log_level min);
/* Parses "debug", "info", "notice", "warning", "err". Returns 0 or HK_ERR_INVAL. */
int hk_log_level_parse(const char *s, enum hk_log_level *level_r);
/* Tests can capture output: each formatted line goes to fn instead of the target. */
void hk_log_set_sink(void (*fn)(enum hk_log_level, const char *line, void *ctx), void *ctx);

void hk_log(enum hk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hk_logv(enum hk_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_debug(...) hk_log(HK_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) hk_log(HK_LOG_INFO, __VA_ARGS__)
#define log_notice(...) hk_log(HK_LOG_NOTICE, __VA_ARGS__)
#define log_warn(...) hk_log(HK_LOG_WARNING, __VA_ARGS__)
#define log_err(...) hk_log(HK_LOG_ERR, __VA_ARGS__)

#endif
