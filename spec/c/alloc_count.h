/* spec/c/alloc_count.h — count heap allocations between start and stop. */
#ifndef MS_SPEC_ALLOC_COUNT_H
#define MS_SPEC_ALLOC_COUNT_H
void alloc_count_start(void);
long alloc_count_stop(void);
#endif
