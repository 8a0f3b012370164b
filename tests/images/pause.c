/* The node's pod sandbox ("pause") process: holds the pod's namespaces until SIGTERM/SIGINT.
 * registry.k8s.io/pause cannot be pulled here, so the node builds this one (static, no libc calls
 * beyond signals) and sets it as containerd's sandbox_image. It also reaps zombies as PID 1. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  struct sigaction term = {.sa_handler = stop}, child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGTERM, &term, NULL);
  sigaction(SIGINT, &term, NULL);
  sigaction(SIGCHLD, &child, NULL);
  for (;;) pause();
}
