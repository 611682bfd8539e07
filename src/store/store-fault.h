/* The fault-injecting store driver, for tests.
 *
 * store_open(&store_driver_fault, path, ...) opens the SQLite driver on
 * path and wraps it. Every SQL statement the SQLite driver runs on the
 * wrapped handle is one step (BEGIN and COMMIT included, ROLLBACK never),
 * so a fault can hit each internal step of a multi-step operation; a fault
 * inside a transaction makes the driver roll it back. */
#ifndef HK_STORE_FAULT_H
#define HK_STORE_FAULT_H

#include "store/store.h"

/* Restarts the step count; the fail_at-th step from now (1 = the next)
 * fails once with HK_ERR_FAULT, later ones succeed. 0 disables faults.
 * HK_ERR_INVAL if store is not a fault store. */
int store_fault_set(struct store *store, unsigned fail_at) HK_WARN_UNUSED;
/* Steps counted since the last store_fault_set() (0 for other stores). */
unsigned store_fault_steps(const struct store *store);

#endif
