/* Everything the Swift host imports from the CModKit target. */
#include "modkit/module.h"
#include "modkit/host.h"
#include "modkit/refcount_control.h"
#include "modkit/syscalls.h"
#include "modkit/process.h"
#include "modkit/loaded_objects.h"
#include "modkit/crash_report.h"
#include "modkit/cache.h"
