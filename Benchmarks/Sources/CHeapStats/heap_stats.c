#include <malloc.h>
#include "heap_stats.h"

size_t heap_stats_in_use(void) {
    return mallinfo2().uordblks;
}
