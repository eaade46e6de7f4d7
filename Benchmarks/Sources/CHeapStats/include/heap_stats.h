#include <stddef.h>
/// Bytes currently allocated by malloc (glibc mallinfo2().uordblks).
size_t heap_stats_in_use(void);
