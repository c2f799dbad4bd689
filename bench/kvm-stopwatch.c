/*
 * kvm-stopwatch: times a monitor's start-up, from the exec of its binary
 * to its first KVM_RUN and to that KVM_RUN's return (the first exit), the
 * same way for any monitor (vmm-run, QEMU), without its cooperation.
 *
 * usage: kvm-stopwatch [--smaps FILE | --until-output TEXT] -- COMMAND [ARGS...]
 *
 * COMMAND runs under a seccomp filter that hands every ioctl(KVM_RUN), of
 * any of its threads, to this tracer (SECCOMP_RET_TRACE); nothing else is
 * traced, so the monitor runs at full speed until then. The tracer follows
 * the first KVM_RUN until one returns with a guest exit (a KVM_RUN that a
 * signal interrupts, as QEMU's first one is, does not count), then kills
 * COMMAND: with the filter in place a KVM_RUN without a tracer would fail,
 * so COMMAND never runs on untraced. Prints on stdout, "name value" lines:
 *
 *   first_kvm_run_ns   exec -> entry of the first KVM_RUN
 *   first_exit_ns      exec -> return of the first KVM_RUN with an exit
 *   first_exit_reason  its kvm_run.exit_reason (-1 if unreadable)
 *   first_exit_port    the port of a KVM_EXIT_IO, else -1
 *   interrupted_runs   KVM_RUNs that returned early before that
 *
 * With --smaps FILE it instead copies /proc/PID/smaps to FILE at the first
 * KVM_RUN (the monitor's memory just before the guest's first
 * instruction), prints only first_kvm_run_ns and kills COMMAND there: the
 * copy would distort the time to the first exit.
 *
 * With --until-output TEXT nothing is traced: COMMAND's stdout goes into a
 * pipe, and the tracer prints output_ns, exec -> the moment TEXT arrived
 * there, then kills COMMAND (e.g. a guest's first serial output).
 *
 * "exec" is the child's clock reading just before execve(). Exits 0 on
 * success, 1 with a message if COMMAND ended, failed to exec, or the
 * tracing failed before the first exit, 2 for a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What the child hands over before it execs, in a shared page. */
struct handover {
	uint64_t exec_ns;
	int exec_errno;
};

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	fputs("kvm-stopwatch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* ioctl(fd, KVM_RUN, ...) -> SECCOMP_RET_TRACE; everything else allowed. */
static int install_filter(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* The low half of args[1], the request (little-endian). */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, KVM_RUN, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void __attribute__((noreturn)) run_child(int go_fd, int out_fd, bool trace,
						struct handover *handover, char **argv)
{
	char go;

	/* Kept across exec: COMMAND never outlives the stopwatch. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
	    (out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0)) {
		handover->exec_errno = errno;
		_exit(127);
	}
	if (trace && install_filter() < 0) {
		handover->exec_errno = errno;
		_exit(127);
	}
	/* Wait until the parent is our tracer: a traced KVM_RUN without one fails. */
	if (read(go_fd, &go, 1) != 1)
		_exit(127);
	handover->exec_ns = now_ns();
	execvp(argv[0], argv);
	handover->exec_errno = errno;
	_exit(127);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (in < 0 || out < 0)
		die("cannot copy %s to %s: %s", from, to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			die("write %s: %s", to, strerror(errno));
	if (n < 0)
		die("read %s: %s", from, strerror(errno));
	close(in);
	close(out);
}

/* Reads the start of the vCPU's kvm_run from the mapping of its fd. */
static void read_exit(pid_t pid, long *reason, long *port)
{
	char path[64], line[512];
	unsigned long start;
	struct kvm_run run;
	FILE *maps;

	*reason = *port = -1;
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	maps = fopen(path, "re");
	if (!maps)
		return;
	while (fgets(line, sizeof(line), maps)) {
		if (!strstr(line, "anon_inode:kvm-vcpu") || sscanf(line, "%lx-", &start) != 1)
			continue;
		struct iovec local = { &run, sizeof(run) };
		struct iovec remote = { (void *)start, sizeof(run) };

		if (process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)sizeof(run)) {
			*reason = run.exit_reason;
			if (run.exit_reason == KVM_EXIT_IO)
				*port = run.io.port;
		}
		break;
	}
	fclose(maps);
}

/* Waits for every traced thread to go, so no process outlives us. */
static void reap_all(void)
{
	int status;

	while (waitpid(-1, &status, __WALL) > 0)
		;
}

static struct handover *new_handover(void);

/* Starts COMMAND (traced: under the filter and PTRACE_SEIZEd) and returns its pid. */
static pid_t start_child(char **command, bool trace, int out_fd, struct handover *handover)
{
	int go[2];
	pid_t child;

	if (pipe2(go, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		close(go[1]);
		run_child(go[0], out_fd, trace, handover, command);
	}
	close(go[0]);
	if (trace && ptrace(PTRACE_SEIZE, child, 0, PTRACE_O_TRACESECCOMP | PTRACE_O_TRACECLONE |
			    PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) < 0) {
		kill(child, SIGKILL);
		die("PTRACE_SEIZE: %s", strerror(errno));
	}
	if (write(go[1], "g", 1) != 1)
		die("cannot start the child: %s", strerror(errno));
	close(go[1]);
	return child;
}

static void __attribute__((noreturn)) ended_early(const char *what, int status,
						  const struct handover *handover,
						  const char *goal)
{
	if (handover->exec_errno)
		die("cannot run %s: %s", what, strerror(handover->exec_errno));
	die("%s ended (%s %d) before %s", what,
	    WIFEXITED(status) ? "status" : "signal",
	    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), goal);
}

/* Follows KVM_RUN calls until the first guest exit (or, with @smaps_copy,
 * until the first call); prints the times; kills the child. */
static int time_first_exit(char **command, const char *smaps_copy)
{
	struct handover *handover = new_handover();
	pid_t child = start_child(command, true, -1, handover), tracing = 0;
	unsigned int interrupted = 0;
	uint64_t first_run_ns = 0;

	for (;;) {
		int status, sig;
		pid_t tid = waitpid(-1, &status, __WALL);

		if (tid < 0)
			die("waitpid: %s", strerror(errno));
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			if (tid == child)
				ended_early(command[0], status, handover, "its first KVM exit");
			continue;
		}
		if (!WIFSTOPPED(status))
			continue;
		sig = WSTOPSIG(status);
		if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8)) &&
		    (!tracing || tid == tracing)) {
			if (!tracing) {
				first_run_ns = now_ns();
				tracing = tid;
			}
			if (smaps_copy) {
				char path[64];

				snprintf(path, sizeof(path), "/proc/%d/smaps", child);
				copy_file(path, smaps_copy);
				kill(child, SIGKILL);
				printf("first_kvm_run_ns %llu\n",
				       (unsigned long long)(first_run_ns - handover->exec_ns));
				reap_all();
				return 0;
			}
			/* On to the syscall's exit (or its entry stop first, on
			 * kernels that report it after the seccomp stop). */
			ptrace(PTRACE_SYSCALL, tid, 0, 0);
			continue;
		}
		if (sig == (SIGTRAP | 0x80) && tid == tracing) {
			struct __ptrace_syscall_info info;
			uint64_t exit_ns = now_ns();
			long reason, port;

			if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof(info), &info) <= 0)
				die("PTRACE_GET_SYSCALL_INFO: %s", strerror(errno));
			if (info.op != PTRACE_SYSCALL_INFO_EXIT) {
				ptrace(PTRACE_SYSCALL, tid, 0, 0);
				continue;
			}
			if (info.exit.rval != 0) {
				/* Interrupted before the guest exited (a signal
				 * kick): wait for its next KVM_RUN. */
				interrupted++;
				ptrace(PTRACE_CONT, tid, 0, 0);
				continue;
			}
			read_exit(child, &reason, &port);
			kill(child, SIGKILL);
			printf("first_kvm_run_ns %llu\n",
			       (unsigned long long)(first_run_ns - handover->exec_ns));
			printf("first_exit_ns %llu\n",
			       (unsigned long long)(exit_ns - handover->exec_ns));
			printf("first_exit_reason %ld\n", reason);
			printf("first_exit_port %ld\n", port);
			printf("interrupted_runs %u\n", interrupted);
			reap_all();
			return 0;
		}
		/* Anything else (clone events, new threads' first stops,
		 * other KVM_RUNs, signals): go on, delivering real signals. */
		if (status >> 16)
			sig = 0;
		ptrace(PTRACE_CONT, tid, 0, sig);
	}
}

/* Reads the child's stdout until @text shows up; prints when; kills it. */
static int time_output(char **command, const char *text)
{
	struct handover *handover = new_handover();
	size_t text_len = strlen(text), kept = 0;
	char buf[4096 * 2];
	int out[2], status;
	pid_t child;

	if (pipe2(out, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	child = start_child(command, false, out[1], handover);
	close(out[1]);
	for (;;) {
		ssize_t n = read(out[0], buf + kept, sizeof(buf) - 1 - kept);
		uint64_t seen_ns = now_ns();

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			waitpid(child, &status, 0);
			ended_early(command[0], status, handover, "printing the text");
		}
		kept += n;
		buf[kept] = '\0';
		if (memmem(buf, kept, text, text_len)) {
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
			printf("output_ns %llu\n", (unsigned long long)(seen_ns - handover->exec_ns));
			return 0;
		}
		/* Keep only a tail that may hold the start of @text. */
		if (kept >= text_len) {
			memmove(buf, buf + kept - (text_len - 1), text_len - 1);
			kept = text_len - 1;
		}
	}
}

static struct handover *new_handover(void)
{
	struct handover *handover = mmap(NULL, sizeof(*handover), PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (handover == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	return handover;
}

int main(int argc, char **argv)
{
	const char *smaps_copy = NULL, *output_text = NULL;
	int argi = 1;

	if (argi + 1 < argc && !strcmp(argv[argi], "--smaps")) {
		smaps_copy = argv[argi + 1];
		argi += 2;
	} else if (argi + 1 < argc && !strcmp(argv[argi], "--until-output") && argv[argi + 1][0]) {
		output_text = argv[argi + 1];
		argi += 2;
	}
	if (argi >= argc || strcmp(argv[argi], "--") || argi + 1 >= argc) {
		fprintf(stderr, "usage: kvm-stopwatch [--smaps FILE | --until-output TEXT] -- COMMAND [ARGS...]\n");
		return 2;
	}
	if (output_text)
		return time_output(argv + argi + 1, output_text);
	return time_first_exit(argv + argi + 1, smaps_copy);
}
