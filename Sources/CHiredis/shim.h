// hiredis 0.14 (Debian libhiredis-dev): the synchronous reader and the async API.
// Only non-variadic calls are used from Swift (redisAsyncCommandArgv).
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

// Exported by libhiredis (0.14 and 1.x) though not declared in async.h: hands the replies
// already in the reader to their callbacks. RedisClient reads the socket itself (one read
// per event, no FIONREAD) and then calls this, as redisAsyncHandleRead does after its read.
void redisProcessCallbacks(redisAsyncContext *ac);
