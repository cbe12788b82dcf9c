// hiredis 0.14 (Debian libhiredis-dev): the synchronous reader and the async API.
// Only non-variadic calls are used from Swift (redisAsyncCommandArgv).
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
