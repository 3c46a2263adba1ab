/* spec/c/comm_ranks.c — forking ranks for the communicator specs (see comm_ranks.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "comm_ranks.h"
#include "core/clock.h"

int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

ms_world world_of_one(void) {
    ms_world w;
    memset(&w, 0, sizeof w);
    w.world = w.local_world = 1;
    w.source = "spec";
    return w;
}

ms_world job_world(const rank_job *job, int rank) {
    ms_world w;
    memset(&w, 0, sizeof w);
    w.rank = rank;
    w.world = job->world;
    w.local_rank = rank;
    w.local_world = job->world;
    snprintf(w.master_addr, sizeof w.master_addr, "127.0.0.1");
    w.master_port = job->port;
    snprintf(w.job_token, sizeof w.job_token, "%s", job->token ? job->token : "spec");
    w.source = "spec";
    return w;
}

ms_status job_comm(const rank_job *job, int rank, ms_comm **out) {
    ms_world w = job_world(job, rank);
    return ms_comm_create(&w, job->provider, job->timeout_ms, out);
}

int spawn_rank(int rank, rank_fn body, void *arg) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = body(rank, arg);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    return (int)pid;
}

int reap(int pid, double limit_s) {
    double end = ms_now() + limit_s;
    int status = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) return status;
        if (got < 0) return -1;
        if (ms_now() > end) {
            fprintf(stderr, "child %d still running after %.1f s: killing it\n", pid, limit_s);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return status;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 5000000};
        nanosleep(&ts, NULL);
    }
}

int run_ranks(const rank_job *job, rank_fn body, void *arg, double limit_s, int *status) {
    int pids[64];
    int world = job->world;
    for (int r = 0; r < world; r++) pids[r] = spawn_rank(r, body, arg);
    if (job->pids)
        for (int r = 0; r < world; r++) job->pids[r] = pids[r];
    int bad = 0;
    double end = ms_now() + limit_s;
    for (int r = 0; r < world; r++) {
        double left = end - ms_now();
        int st = reap(pids[r], left > 0 ? left : 0.01);
        if (status) status[r] = st;
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            if (WIFSIGNALED(st)) fprintf(stderr, "rank %d died of signal %d\n", r, WTERMSIG(st));
            else fprintf(stderr, "rank %d exited with status %d\n", r, WEXITSTATUS(st));
            bad++;
        }
    }
    return bad;
}
