/* optim/schedule.c — learning-rate schedules with linear warmup. */
#include <math.h>

#include "optim/optim.h"

float ms_schedule_lr(const ms_train_config *t, int64_t step) {
    if (t->warmup > 0 && step < t->warmup) return t->lr * (float)(step + 1) / (float)t->warmup;
    int64_t span = (int64_t)t->steps - t->warmup - 1;
    double progress = span > 0 ? (double)(step - t->warmup) / (double)span : 1.0;
    if (progress > 1.0) progress = 1.0;
    if (progress < 0.0) progress = 0.0;
    switch (t->schedule) {
    case MS_SCHEDULE_LINEAR:
        return (float)(t->lr + (t->min_lr - t->lr) * progress);
    case MS_SCHEDULE_COSINE:
        return (float)(t->min_lr + 0.5 * (t->lr - t->min_lr) * (1.0 + cos(M_PI * progress)));
    default:
        return t->lr;
    }
}
