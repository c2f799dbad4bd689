/*
 * vmm-run: boot a Linux kernel straight into an EROFS root filesystem,
 * run one command in it, and exit with the command's status.
 */
#include <endian.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/console_backend.h"
#include "devices/i8042.h"
#include "devices/io_loop.h"
#include "devices/serial_8250.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_vsock.h"
#include "devices/virtio_console.h"
#include "vmm/boot.h"
#include "vmm/bootconfig.h"
#include "vmm/guest_abi.h"
#include "vmm/guest_args.h"
#include "vmm/guest_control.h"
#include "vmm/layout.h"
#include "vmm/mount_plan.h"
#include "vmm/mptable.h"
#include "vmm/range.h"
#include "vmm/terminal.h"
#include "vmm/vm.h"
#include "vmm/x86_entry.h"

/* Exit statuses of vmm-run's own failures (documented in --help). */
#define EXIT_SETUP 125          /* could not start the VM */
#define EXIT_NO_STATUS 124      /* guest ended without reporting a status */
#define EXIT_VM_FAILED 123      /* the VM failed while running */

#define EROFS_SUPER_OFFSET 1024
#define EROFS_SUPER_MAGIC 0xe0f5e1e2u
#define MAX_EXTRA_DISKS 64      /* --disk options */
#define MAX_DISKS (1 + MAX_EXTRA_DISKS + 1) /* the root, --disk, the plan disk */
static_assert(MAX_DISKS <= VIRTIO_MMIO_MAX_DEVICES, "every disk has an MMIO window");
static_assert(VIRTIO_MMIO_MAX_DEVICES <= BUS_MAX_RANGES, "every window fits on the bus");
static_assert(VM_MAX_VCPUS <= MPTABLE_MAX_CPUS, "the MP table lists every vCPU");
#define KERNEL_MAX_SIZE (512u << 20)

struct disk_arg {
	const char *path;           /* a file, or the list after "extents=" */
	bool extents;
	bool read_only;
	const char *serial;
	unsigned int queue_size;
};

struct options {
	const char *kernel;
	const char *rootfs;
	struct disk_arg disks[MAX_DISKS];   /* [0] is the root */
	unsigned int nr_disks;
	uint64_t mem;
	unsigned int cpus;
	const char *cmdline_extra;
	const char *serial_file;
	const char *root_plan;
	const char *vsock_path;
	uint64_t vsock_cid;
	bool vsock_cid_given;
	const char *console;        /* --console: stdio, socket:PATH or a file */
	bool interactive;
	bool boot_time;
	bool verbose;
	bool hugepages;
	char **command;
	int command_argc;
};

static uint64_t start_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void usage(FILE *out)
{
	fprintf(out,
"usage: vmm-run --kernel KERNEL --rootfs IMAGE [OPTIONS] -- COMMAND [ARGS...]\n"
"       vmm-run --kernel KERNEL --rootfs IMAGE --vsock PATH [OPTIONS]\n"
"\n"
"Boots KERNEL (bzImage, or ELF vmlinux with a PVH or 64-bit entry) with\n"
"IMAGE, an EROFS filesystem, as its read-only root on /dev/vda, runs\n"
"COMMAND inside through erovm's guest-init, and exits with its status.\n"
"The command's stdout and stderr appear on vmm-run's stdout. With --vsock,\n"
"guest-init also serves its control service on guest port 1024 (erovm-ctl\n"
"--vsock PATH exec|version|shutdown ...); without a COMMAND the VM serves\n"
"it until erovm-ctl shutdown, and vmm-run then exits 0. With --interactive,\n"
"the command runs on the console instead.\n"
"\n"
"  --kernel FILE         guest kernel\n"
"  --rootfs FILE         EROFS root image (/dev/vda, read-only)\n"
"  --disk FILE[,ro][,serial=ID][,queue=N]\n"
"  --disk extents=FILE[@OFFSET[+LENGTH]]:FILE...[,ro][,serial=ID][,queue=N]\n"
"                        another virtio-blk disk (/dev/vdb, /dev/vdc, ...;\n"
"                        up to 64; past what the kernel command line holds\n"
"                        devices are announced through bootconfig, which\n"
"                        needs CONFIG_BOOT_CONFIG in the guest kernel):\n"
"                        a file, or the concatenation of byte ranges of\n"
"                        files (a flat disk; without +LENGTH to the end of\n"
"                        the file; a read-only disk is zero-padded to whole\n"
"                        sectors, a writable one must be whole sectors);\n"
"                        ro makes it read-only; ID (up to 20 bytes) is what\n"
"                        the guest sees in /sys/block/vdX/serial; N is the\n"
"                        queue size (power of two, at most 256)\n"
"  --mem SIZE            guest memory, in MiB or with a K/M/G suffix\n"
"                        (default 256M, multiple of 2 MiB)\n"
"  --hugepages           back guest memory with 2 MiB huge pages\n"
"  --cpus N              vCPUs, 1 to %d (default 1)\n"
"  --root-plan FILE      a mount plan (see vmm/mount_plan.h) for guest-init\n"
"                        to run before COMMAND; COMMAND then runs inside the\n"
"                        plan's root (e.g. layers assembled into an overlay)\n"
"  --vsock PATH          a virtio-vsock device, bridged to Unix sockets:\n"
"                        host processes connect to PATH and write\n"
"                        \"CONNECT <port>\\n\" to reach a guest port (answer\n"
"                        \"OK <host port>\\n\"); guest connections to host\n"
"                        port P go to PATH_P\n"
"  --vsock-cid N         the guest's vsock CID (default 3; 3..4294967295)\n"
"  --cmdline TEXT        extra kernel command-line words\n"
"  --serial FILE         write the kernel's console (ttyS0), its full log,\n"
"                        to FILE\n"
"  --console stdio|FILE|socket:PATH\n"
"                        a virtio console, /dev/hvc0 in the guest (for the\n"
"                        kernel log there: --cmdline console=hvc0). stdio:\n"
"                        vmm-run's stdin and stdout; a terminal is raw while\n"
"                        the VM runs (Ctrl-C goes to the guest) and its\n"
"                        window size is the console's. FILE: output only.\n"
"                        socket:PATH: listens there, one client at a time;\n"
"                        output is dropped while none is connected\n"
"  --interactive         run COMMAND as an interactive session on the\n"
"                        console (its controlling terminal: job control,\n"
"                        Ctrl-C stops its foreground job); implies\n"
"                        --console stdio unless a socket is given\n"
"  --verbose             show the kernel's full log on stdout; without this\n"
"                        or --serial the kernel boots quiet\n"
"  --boot-time           print boot timings (ms since vmm-run started) on\n"
"                        stderr: first KVM_RUN, first serial byte, init\n"
"                        started, command finished, VM exited\n"
"  --help                this text\n"
"\n"
"Exit status: the command's own (0-255), or\n"
"  %d  vmm-run could not start the VM: bad arguments, a missing or\n"
"       unreadable file, no usable /dev/kvm, a kernel or image it rejects\n"
"  %d  the guest ended without reporting a status: kernel panic, no\n"
"       init, init failure, or a reset or power-off before the command\n"
"       finished\n"
"  %d  the VM failed while running (an exit the monitor cannot handle,\n"
"       a KVM error); the reason is printed\n"
"These are also valid command statuses; the message on stderr tells.\n",
		VM_MAX_VCPUS, EXIT_SETUP, EXIT_NO_STATUS, EXIT_VM_FAILED);
}

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	fputs("vmm-run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_SETUP);
}

static uint64_t parse_size(const char *text)
{
	char *end;
	unsigned long long value;
	uint64_t shift = 20;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || end == text)
		die("--mem %s: not a size", text);
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: die("--mem %s: unknown suffix", text);
	}
	if (*end || value == 0 || value > (UINT64_MAX >> shift))
		die("--mem %s: not a size", text);
	return value << shift;
}

static unsigned long long parse_number(const char *text, const char *what,
				       const char *spec)
{
	unsigned long long value;
	char *end;

	errno = 0;
	value = strtoull(text, &end, 0);
	if (errno || end == text || *end || *text == '-')
		die("--disk %s: %s '%s' is not a number", spec, what, text);
	return value;
}

static unsigned int parse_cpus(const char *text)
{
	unsigned long value;
	char *end;

	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno || end == text || *end || *text == '-' || value < 1 ||
	    value > VM_MAX_VCPUS)
		die("--cpus %s: not a vCPU count (1..%d)", text, VM_MAX_VCPUS);
	return value;
}

static uint64_t parse_cid(const char *text)
{
	unsigned long long value;
	char *end;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || end == text || *end || *text == '-' ||
	    value < VSOCK_CID_MIN_GUEST || value > VSOCK_CID_MAX_GUEST)
		die("--vsock-cid %s: not a guest CID (%d..%u; 0-2 are reserved)",
		    text, VSOCK_CID_MIN_GUEST, VSOCK_CID_MAX_GUEST);
	return value;
}

/* --disk FILE | extents=FILE[@OFF[+LEN]]:FILE...  [,ro][,serial=ID][,queue=N] */
static struct disk_arg parse_disk(char *spec)
{
	struct disk_arg disk = { .queue_size = VIRTIO_BLK_QUEUE_SIZE_MAX };
	char *option;

	disk.path = strtok(spec, ",");
	if (!disk.path || !*disk.path)
		die("--disk needs a file name or extents=LIST");
	if (!strncmp(disk.path, "extents=", 8)) {
		disk.extents = true;
		disk.path += 8;
		if (!*disk.path)
			die("--disk extents=: the list of extents is empty");
	}
	while ((option = strtok(NULL, ","))) {
		if (!strcmp(option, "ro"))
			disk.read_only = true;
		else if (!strncmp(option, "serial=", 7))
			disk.serial = option + 7;
		else if (!strncmp(option, "queue=", 6))
			disk.queue_size = parse_number(option + 6, "queue size", disk.path);
		else
			die("--disk %s: unknown option '%s' (ro, serial=ID, queue=N)",
			    disk.path, option);
	}
	return disk;
}

/* Adds "FILE[@OFF[+LEN]]" (LEN 0 or absent: to the end of FILE) to @disk. */
static void add_extent(struct blk_disk *disk, char *piece, const char *spec)
{
	unsigned long long offset = 0, length = 0;
	char *at = strchr(piece, '@'), *plus;
	char err[512];

	if (at) {
		*at++ = '\0';
		plus = strchr(at, '+');
		if (plus) {
			*plus++ = '\0';
			length = parse_number(plus, "length", spec);
			if (!length)
				die("--disk extents=%s: extent %s has length 0", spec, piece);
		}
		offset = parse_number(at, "offset", spec);
	}
	if (!*piece)
		die("--disk extents=%s: an extent without a file name", spec);
	if (blk_disk_add_extent(disk, piece, offset, length, false, err, sizeof(err)))
		die("--disk extents=%s: %s", spec, err);
}

/* Two extents of one file that share bytes would alias each other. */
static void refuse_overlaps(const struct blk_disk *disk, const char *spec)
{
	for (unsigned int i = 0; i < disk->nr_extents; i++) {
		const struct blk_extent *a = &disk->extents[i];

		for (unsigned int j = i + 1; j < disk->nr_extents; j++) {
			const struct blk_extent *b = &disk->extents[j];

			if (a->dev == b->dev && a->ino == b->ino &&
			    ranges_overlap(a->file_offset, a->len, b->file_offset, b->len))
				die("--disk extents=%s: extents %u and %u overlap in the same file",
				    spec, i + 1, j + 1);
		}
	}
}

/*
 * Checks the plan in @path here, where an error is cheap to report, and
 * hands it to the guest as a read-only disk with serial GUEST_PLAN_SERIAL:
 * the text, then zeros up to a whole sector (at least one NUL ends it),
 * in an unnamed temporary file (O_TMPFILE) that nothing has to clean up.
 */
static void add_plan_disk(struct options *opt)
{
	static struct mount_plan plan;
	static char text[MOUNT_PLAN_MAX_TEXT + 1];
	static const char zeros[512];
	const char *dir = getenv("TMPDIR");
	char err[512], *path;
	size_t len = 0, padded;
	FILE *file;
	int fd;

	file = fopen(opt->root_plan, "re");
	if (!file)
		die("--root-plan %s: %s", opt->root_plan, strerror(errno));
	len = fread(text, 1, sizeof(text), file);
	if (ferror(file))
		die("--root-plan %s: read error", opt->root_plan);
	fclose(file);
	if (len > MOUNT_PLAN_MAX_TEXT)
		die("--root-plan %s: longer than %d bytes", opt->root_plan, MOUNT_PLAN_MAX_TEXT);
	if (mount_plan_parse(text, len, &plan, err, sizeof(err)) < 0)
		die("--root-plan %s: %s", opt->root_plan, err);
	mount_plan_free(&plan);

	/* --disk leaves the last slot to the plan disk. */
	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR, 0600);
	if (fd < 0)
		die("cannot create the plan disk in %s: %s", dir, strerror(errno));
	padded = (len / 512 + 1) * 512;
	if (write(fd, text, len) != (ssize_t)len ||
	    write(fd, zeros, padded - len) != (ssize_t)(padded - len))
		die("cannot write the plan disk: %s", strerror(errno));
	/* Left open: the disk reopens it through /proc. */
	if (asprintf(&path, "/proc/self/fd/%d", fd) < 0)
		die("out of memory");
	opt->disks[opt->nr_disks++] = (struct disk_arg){
		.path = path, .read_only = true, .serial = GUEST_PLAN_SERIAL,
		.queue_size = VIRTIO_BLK_QUEUE_SIZE_MAX,
	};
}

/* Opens a disk's files; every problem is an error naming the file. */
static void open_disk(struct blk_disk *disk, const struct disk_arg *arg, bool root)
{
	const char *option = root ? "--rootfs" : "--disk";
	char err[512];

	blk_disk_init(disk, arg->read_only);
	if (arg->extents) {
		char *list = strdup(arg->path), *piece, *next = list;

		if (!list)
			die("out of memory");
		/* strsep, not strtok: "a::b" must be an error, not "a:b". */
		while ((piece = strsep(&next, ":")))
			add_extent(disk, piece, arg->path);
		free(list);
		refuse_overlaps(disk, arg->path);
	} else if (blk_disk_add_extent(disk, arg->path, 0, 0, false, err, sizeof(err))) {
		die("%s %s: %s", option, arg->path, err);
	}
	if (blk_disk_finish(disk, err, sizeof(err)))
		die("%s %s%s: %s", option, arg->extents ? "extents=" : "", arg->path, err);
}

static void parse_options(int argc, char **argv, struct options *opt)
{
	enum { OPT_KERNEL = 256, OPT_ROOTFS, OPT_DISK, OPT_MEM, OPT_CPUS, OPT_CMDLINE,
	       OPT_SERIAL, OPT_BOOT_TIME, OPT_VERBOSE, OPT_HUGEPAGES, OPT_ROOT_PLAN,
	       OPT_VSOCK, OPT_VSOCK_CID,
	       OPT_CONSOLE, OPT_INTERACTIVE, OPT_HELP };
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "rootfs", required_argument, NULL, OPT_ROOTFS },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "serial", required_argument, NULL, OPT_SERIAL },
		{ "boot-time", no_argument, NULL, OPT_BOOT_TIME },
		{ "verbose", no_argument, NULL, OPT_VERBOSE },
		{ "hugepages", no_argument, NULL, OPT_HUGEPAGES },
		{ "root-plan", required_argument, NULL, OPT_ROOT_PLAN },
		{ "vsock", required_argument, NULL, OPT_VSOCK },
		{ "vsock-cid", required_argument, NULL, OPT_VSOCK_CID },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "interactive", no_argument, NULL, OPT_INTERACTIVE },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	int c;

	*opt = (struct options){ .mem = 256 << 20, .cpus = 1, .nr_disks = 1,
				 .vsock_cid = VSOCK_CID_MIN_GUEST };
	/* "+": stop at the first non-option, which must be "--". */
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL: opt->kernel = optarg; break;
		case OPT_ROOTFS: opt->rootfs = optarg; break;
		case OPT_DISK:
			if (opt->nr_disks == 1 + MAX_EXTRA_DISKS)
				die("at most %d --disk options", MAX_EXTRA_DISKS);
			opt->disks[opt->nr_disks++] = parse_disk(optarg);
			break;
		case OPT_MEM: opt->mem = parse_size(optarg); break;
		case OPT_CPUS: opt->cpus = parse_cpus(optarg); break;
		case OPT_CMDLINE: opt->cmdline_extra = optarg; break;
		case OPT_SERIAL: opt->serial_file = optarg; break;
		case OPT_BOOT_TIME: opt->boot_time = true; break;
		case OPT_VERBOSE: opt->verbose = true; break;
		case OPT_HUGEPAGES: opt->hugepages = true; break;
		case OPT_ROOT_PLAN: opt->root_plan = optarg; break;
		case OPT_VSOCK: opt->vsock_path = optarg; break;
		case OPT_VSOCK_CID:
			opt->vsock_cid = parse_cid(optarg);
			opt->vsock_cid_given = true;
			break;
		case OPT_CONSOLE: opt->console = optarg; break;
		case OPT_INTERACTIVE: opt->interactive = true; break;
		case OPT_HELP: usage(stdout); exit(0);
		default: usage(stderr); exit(EXIT_SETUP);
		}
	}
	if (!opt->kernel || !opt->rootfs)
		die("--kernel and --rootfs are required (see --help)");
	if (optind < argc && strcmp(argv[optind - 1], "--"))
		die("unexpected argument \"%s\": the command goes after -- (see --help)",
		    argv[optind]);
	/* No command: service mode, where only the control service has work. */
	if (optind >= argc && !opt->vsock_path)
		die("no command: give it after --, or boot with --vsock PATH to serve "
		    "erovm-ctl until shut down (see --help)");
	if (opt->vsock_cid_given && !opt->vsock_path)
		die("--vsock-cid needs --vsock");
	if (opt->console && !*opt->console)
		die("--console needs stdio, FILE or socket:PATH");
	if (opt->interactive && !opt->console)
		opt->console = "stdio";
	if (opt->interactive && strcmp(opt->console, "stdio") &&
	    strncmp(opt->console, "socket:", 7))
		die("--interactive needs a console with input: stdio or socket:PATH, not a file");
	if (opt->interactive && optind >= argc)
		die("--interactive needs a command to run on the console");
	opt->command = argv + optind;
	opt->command_argc = argc - optind;
	opt->disks[0] = (struct disk_arg){
		.path = opt->rootfs, .read_only = true, .serial = "rootfs",
		.queue_size = VIRTIO_BLK_QUEUE_SIZE_MAX,
	};
}

/* Reads a whole file that must be a regular file of sane size. */
static void *read_kernel(const char *path, size_t *size)
{
	struct stat st;
	void *image;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("--kernel %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		die("--kernel %s: not a regular file", path);
	if (st.st_size == 0 || (uint64_t)st.st_size > KERNEL_MAX_SIZE)
		die("--kernel %s: %s", path, st.st_size ? "larger than 512 MiB" : "empty file");
	image = malloc(st.st_size);
	if (!image)
		die("--kernel %s: out of memory", path);
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, (char *)image + done, st.st_size - done);

		if (n <= 0)
			die("--kernel %s: read: %s", path, n ? strerror(errno) : "file shrank");
		done += n;
	}
	close(fd);
	*size = done;
	return image;
}

/* A clear error now beats a kernel panic about the root filesystem later. */
static void check_erofs(const char *path)
{
	uint32_t magic;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("--rootfs %s: %s", path, strerror(errno));
	if (pread(fd, &magic, sizeof(magic), EROFS_SUPER_OFFSET) != sizeof(magic) ||
	    le32toh(magic) != EROFS_SUPER_MAGIC)
		die("--rootfs %s: not an EROFS image (no EROFS superblock at offset 1024)", path);
	close(fd);
}

/*
 * PVM ("pagetable-based virtual machine") offers /dev/kvm without hardware
 * virtualization; stock guest kernels cannot boot on it. Warn, don't refuse:
 * a PVM-enabled guest kernel does boot.
 */
static void warn_if_pvm(void)
{
	char line[4096];
	bool hardware = false;
	FILE *cpuinfo;

	if (access("/sys/module/kvm_pvm", F_OK) != 0)
		return;
	cpuinfo = fopen("/proc/cpuinfo", "re");
	while (cpuinfo && fgets(line, sizeof(line), cpuinfo)) {
		if (!strncmp(line, "flags", 5) && (strstr(line, " vmx") || strstr(line, " svm"))) {
			hardware = true;
			break;
		}
	}
	if (cpuinfo)
		fclose(cpuinfo);
	if (!hardware)
		fprintf(stderr,
			"vmm-run: warning: /dev/kvm here is PVM (no hardware virtualization):\n"
			"vmm-run: warning: only a PVM-enabled guest kernel boots on it; to run a\n"
			"vmm-run: warning: stock kernel use the nested test host: tests/testhost/run -- vmm-run ...\n");
}

struct machine {
	struct options opt;
	struct vm vm;
	struct guest_control control;
	struct serial_8250 console_uart;    /* ttyS0: the kernel's console */
	struct serial_8250 command_uart;    /* ttyS1: the command's output */
	struct i8042 kbc;
	struct io_loop loop;
	struct blk_disk disks[MAX_DISKS];
	struct blk_backend *backends[MAX_DISKS];
	struct virtio_blk *blks[MAX_DISKS];
	int irq_fds[MAX_DISKS];
	unsigned int nr_blks;
	struct vsock_backend *vsock_backend;
	struct virtio_vsock *vsock;
	int vsock_irq_fd;
	/* What Linux is told of each virtio-mmio device (VIRTIO_MMIO_PARAM),
	 * in the order of their windows. */
	char device_specs[VIRTIO_MMIO_MAX_DEVICES][32];
	unsigned int nr_device_specs;
	bool bootconfig_used;
	struct console_backend *cons_backend;   /* --console */
	struct virtio_console *cons;
	int cons_irq_fd;
	int cons_tty_fd;                        /* the terminal it follows, or -1 */
	FILE *console;                      /* where ttyS0 goes, or NULL */
	uint64_t first_run_ns;
	uint64_t first_serial_ns;
};

static void note_serial_byte(struct machine *m)
{
	if (!m->first_serial_ns)
		m->first_serial_ns = now_ns();
}

static void console_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct machine *m = opaque;

	note_serial_byte(m);
	if (m->console)
		fwrite(buf, 1, len, m->console);
}

static void command_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct machine *m = opaque;

	note_serial_byte(m);
	fwrite(buf, 1, len, stdout);
}

static void console_irq(void *opaque, bool level)
{
	struct machine *m = opaque;

	vm_irq_line(&m->vm, SERIAL_COM1_IRQ, level);
}

static void command_irq(void *opaque, bool level)
{
	struct machine *m = opaque;

	vm_irq_line(&m->vm, SERIAL_COM2_IRQ, level);
}

static void guest_reset(void *opaque)
{
	struct machine *m = opaque;

	m->vm.stop = VM_STOP_RESET;
}

static void first_run(void *opaque)
{
	struct machine *m = opaque;

	m->first_run_ns = now_ns();
}

static void check_bus(int ret, const char *what)
{
	if (ret)
		die("cannot place %s on the bus: %s", what, strerror(-ret));
}

static void add_legacy_devices(struct machine *m)
{
	struct vm *vm = &m->vm;

	if (serial_8250_init(&m->console_uart, console_write, console_irq, m) ||
	    serial_8250_init(&m->command_uart, command_write, command_irq, m) ||
	    i8042_init(&m->kbc, guest_reset, m))
		die("cannot set up the legacy devices: %s", strerror(errno));
	check_bus(bus_register(&vm->pio, SERIAL_COM1_PORT, SERIAL_8250_NR_PORTS,
			       serial_8250_access, &m->console_uart, "ttyS0"), "ttyS0");
	check_bus(bus_register(&vm->pio, SERIAL_COM2_PORT, SERIAL_8250_NR_PORTS,
			       serial_8250_access, &m->command_uart, "ttyS1"), "ttyS1");
	check_bus(bus_register(&vm->pio, I8042_DATA_PORT, 1, i8042_data_port_access,
			       &m->kbc, "i8042 data"), "the i8042");
	check_bus(bus_register(&vm->pio, I8042_COMMAND_PORT, 1, i8042_command_port_access,
			       &m->kbc, "i8042 command"), "the i8042");
	m->control.now_ns = now_ns;
	check_bus(bus_register(&vm->pio, GUEST_PORT_BASE, GUEST_PORT_LEN,
			       guest_control_access, &m->control, "guest control"),
		  "the guest control ports");
}

/*
 * The next virtio-mmio window (devices take them in order) and its
 * interrupt line: devices share the VIRTIO_MMIO_IRQS round-robin.
 */
static uint64_t next_mmio_window(const struct machine *m, unsigned int *irq)
{
	static const unsigned int irqs[] = VIRTIO_MMIO_IRQS;
	unsigned int slot = m->nr_device_specs;

	if (slot == VIRTIO_MMIO_MAX_DEVICES)
		die("more than %d virtio devices", VIRTIO_MMIO_MAX_DEVICES);
	*irq = irqs[slot % (sizeof(irqs) / sizeof(irqs[0]))];
	return VIRTIO_MMIO_BASE + (uint64_t)slot * VIRTIO_MMIO_STRIDE;
}

/* Records the device at @base for the kernel (see finish_cmdline()). */
static void announce_device(struct machine *m, uint64_t base, unsigned int irq)
{
	if (m->nr_device_specs == VIRTIO_MMIO_MAX_DEVICES ||
	    virtio_mmio_device_spec(m->device_specs[m->nr_device_specs],
				    sizeof(m->device_specs[0]), base, irq) < 0)
		die("cannot announce the virtio-mmio device at 0x%llx",
		    (unsigned long long)base);
	m->nr_device_specs++;
}

static void add_disks(struct machine *m)
{
	char err[256];

	/*
	 * CQ 4096: disks throttle themselves at the cap, but vsock keeps a
	 * read in flight for each of up to VSOCK_MAX_CONNS connections.
	 */
	if (io_loop_init(&m->loop, 2048, err, sizeof(err)))
		die("cannot set up the I/O loop: %s", err);
	for (unsigned int i = 0; i < m->opt.nr_disks; i++) {
		const struct disk_arg *arg = &m->opt.disks[i];
		unsigned int irq;
		uint64_t base = next_mmio_window(m, &irq);
		struct virtio_mmio *transport;
		int irq_fd;

		if (blk_uring_create(&m->backends[i], &m->disks[i], &m->loop))
			die("cannot set up io_uring for %s", arg->path);
		irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (irq_fd < 0)
			die("eventfd: %s", strerror(errno));
		m->irq_fds[i] = irq_fd;
		if (virtio_blk_create(&m->blks[i], &m->loop, m->backends[i],
				      arg->queue_size, arg->serial,
				      &m->vm.mem, irq_fd, err, sizeof(err)))
			die("%s %s: %s", i ? "--disk" : "--rootfs", arg->path, err);
		m->nr_blks++;
		transport = virtio_blk_mmio(m->blks[i]);
		check_bus(bus_register(&m->vm.mmio, base, VIRTIO_MMIO_REGION_SIZE,
				       virtio_mmio_access, transport, "virtio-blk"),
			  "a virtio-blk device");
		if (vm_add_ioeventfd(&m->vm, base + VIRTIO_MMIO_QUEUE_NOTIFY_OFFSET, 4, 0,
				     transport->queues[0].notify_fd) ||
		    vm_add_irqfd(&m->vm, irq, irq_fd))
			die("cannot wire %s to KVM (ioeventfd/irqfd): %s", arg->path,
			    strerror(errno));
		announce_device(m, base, irq);
	}
}

/* A die() after the bridge's socket exists still removes it. */
static struct vsock_backend *vsock_backend_at_exit;

static void destroy_vsock_backend(void)
{
	if (vsock_backend_at_exit)
		vsock_backend_destroy(vsock_backend_at_exit);
}

static void add_vsock(struct machine *m)
{
	unsigned int irq;
	uint64_t base = next_mmio_window(m, &irq);
	struct virtio_mmio *transport;
	char err[512];
	if (vsock_unix_create(&m->vsock_backend, &m->loop, m->opt.vsock_path,
			      err, sizeof(err)))
		die("--vsock %s: %s", m->opt.vsock_path, err);
	vsock_backend_at_exit = m->vsock_backend;
	atexit(destroy_vsock_backend);
	m->vsock_irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->vsock_irq_fd < 0)
		die("eventfd: %s", strerror(errno));
	if (virtio_vsock_create(&m->vsock, &m->loop, m->vsock_backend, m->opt.vsock_cid,
				&m->vm.mem, m->vsock_irq_fd, err, sizeof(err)))
		die("--vsock %s: %s", m->opt.vsock_path, err);
	transport = virtio_vsock_mmio(m->vsock);
	check_bus(bus_register(&m->vm.mmio, base, VIRTIO_MMIO_REGION_SIZE,
			       virtio_mmio_access, transport, "virtio-vsock"),
		  "the virtio-vsock device");
	for (unsigned int q = 0; q < VIRTIO_VSOCK_NR_QUEUES; q++) {
		if (vm_add_ioeventfd(&m->vm, base + VIRTIO_MMIO_QUEUE_NOTIFY_OFFSET, 4, q,
				     transport->queues[q].notify_fd))
			die("cannot wire vsock to KVM (ioeventfd): %s", strerror(errno));
	}
	if (vm_add_irqfd(&m->vm, irq, m->vsock_irq_fd))
		die("cannot wire vsock to KVM (irqfd): %s", strerror(errno));
	announce_device(m, base, irq);
}

/* The console follows vmm-run's terminal window (SIGWINCH). */
static void terminal_resized(void *opaque)
{
	struct machine *m = opaque;
	uint16_t cols, rows;

	if (terminal_get_size(m->cons_tty_fd, &cols, &rows) == 0)
		virtio_console_set_size(m->cons, cols, rows);
}

static void follow_terminal_size(struct machine *m)
{
	int fd, ret;

	m->cons_tty_fd = isatty(STDIN_FILENO) ? STDIN_FILENO :
			 isatty(STDOUT_FILENO) ? STDOUT_FILENO : -1;
	if (m->cons_tty_fd < 0)
		return;
	fd = terminal_resize_eventfd();
	ret = fd < 0 ? fd : io_loop_watch_eventfd(&m->loop, fd, terminal_resized, m);
	if (ret < 0)
		die("cannot follow the terminal's size: %s", strerror(-ret));
	terminal_resized(m);
}

static void open_console_backend(struct machine *m)
{
	const char *spec = m->opt.console;
	char err[512];
	int ret;

	if (!strcmp(spec, "stdio"))
		ret = console_stdio_create(&m->cons_backend, &m->loop, STDIN_FILENO,
					   STDOUT_FILENO, err, sizeof(err));
	else if (!strncmp(spec, "socket:", 7))
		ret = console_socket_create(&m->cons_backend, &m->loop, spec + 7,
					    err, sizeof(err));
	else
		ret = console_file_create(&m->cons_backend, &m->loop, spec, err,
					  sizeof(err));
	if (ret < 0)
		die("--console %s: %s", spec, err);
}

static void add_console(struct machine *m)
{
	unsigned int irq;
	uint64_t base = next_mmio_window(m, &irq);
	struct virtio_mmio *transport;
	char err[512];

	open_console_backend(m);
	m->cons_irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->cons_irq_fd < 0)
		die("eventfd: %s", strerror(errno));
	if (virtio_console_create(&m->cons, &m->loop, m->cons_backend, &m->vm.mem,
				  m->cons_irq_fd, err, sizeof(err)))
		die("--console %s: %s", m->opt.console, err);
	transport = virtio_console_mmio(m->cons);
	check_bus(bus_register(&m->vm.mmio, base, VIRTIO_MMIO_REGION_SIZE,
			       virtio_mmio_access, transport, "virtio-console"),
		  "the virtio console");
	for (unsigned int q = 0; q < transport->cfg.nr_queues; q++) {
		if (vm_add_ioeventfd(&m->vm, base + VIRTIO_MMIO_QUEUE_NOTIFY_OFFSET, 4, q,
				     transport->queues[q].notify_fd))
			die("cannot wire the console to KVM (ioeventfd): %s", strerror(errno));
	}
	if (vm_add_irqfd(&m->vm, irq, m->cons_irq_fd))
		die("cannot wire the console to KVM (irqfd): %s", strerror(errno));
	announce_device(m, base, irq);
	if (!strcmp(m->opt.console, "stdio"))
		follow_terminal_size(m);
}

static void start_cmdline(const struct options *opt, char *cmdline, size_t size)
{
	int n = snprintf(cmdline, size,
			 "console=ttyS0 reboot=k panic=-1 root=/dev/vda rootfstype=erofs ro"
			 "%s%s%s",
			 /* Every console byte costs a VM exit: keep the kernel
			  * quiet unless its log goes somewhere. */
			 opt->verbose || opt->serial_file ? "" : " quiet",
			 opt->cmdline_extra ? " " : "",
			 opt->cmdline_extra ? opt->cmdline_extra : "");

	if (n < 0 || (size_t)n >= size)
		die("kernel command line too long");
}

/* Appends @word to @cmdline if the result stays within @limit bytes. */
static bool append_word(char *cmdline, size_t limit, const char *word)
{
	size_t len = strlen(cmdline), word_len = strlen(word);

	if (len > limit || word_len > limit - len)
		return false;
	memcpy(cmdline + len, word, word_len + 1);
	return true;
}

/*
 * Completes the kernel command line started by start_cmdline(): the
 * devices, then init= and the command (last: the kernel hands the words
 * after "--" to init), within @limit bytes, the kernel's own limit. The
 * devices go on the line if they all fit; otherwise all of them, in order
 * (Linux names disks in announcement order and the root must stay
 * /dev/vda), go into a bootconfig block in @bootconfig, announced by the
 * word "bootconfig". Returns the block's length, or 0 for none.
 */
static size_t finish_cmdline(struct machine *m, char *cmdline, size_t limit,
			     char *bootconfig, size_t bootconfig_size)
{
	char tail[CMDLINE_MAX] = " init=/sbin/init";
	char devices[CMDLINE_MAX] = "";
	const char *specs[VIRTIO_MMIO_MAX_DEVICES];
	bool devices_fit = true;
	int ret;

	ret = m->opt.command_argc ?
	      guest_args_encode(tail, sizeof(tail), m->opt.command, m->opt.command_argc) : 0;
	if (ret < 0)
		die("the command does not fit on the kernel command line: %s", strerror(-ret));
	for (unsigned int i = 0; i < m->nr_device_specs; i++) {
		devices_fit = devices_fit && append_word(devices, sizeof(devices) - 1, " ") &&
			      append_word(devices, sizeof(devices) - 1, VIRTIO_MMIO_PARAM "=") &&
			      append_word(devices, sizeof(devices) - 1, m->device_specs[i]);
		specs[i] = m->device_specs[i];
	}
	if (devices_fit && strlen(cmdline) + strlen(devices) + strlen(tail) <= limit) {
		strcat(cmdline, devices);
		strcat(cmdline, tail);
		return 0;
	}
	ret = bootconfig_build(bootconfig, bootconfig_size, VIRTIO_MMIO_PARAM, specs,
			       m->nr_device_specs);
	if (ret < 0)
		die("cannot announce %u devices in a bootconfig block: %s",
		    m->nr_device_specs, strerror(-ret));
	if (!append_word(cmdline, limit, " bootconfig") || !append_word(cmdline, limit, tail))
		die("the kernel command line is longer than the kernel's limit of %zu bytes "
		    "(shorten the command or --cmdline)", limit);
	m->bootconfig_used = true;
	return (size_t)ret;
}

static void load_kernel(struct machine *m, void *image, size_t size,
			const struct boot_handoff *handoff)
{
	struct boot_entry entry;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	char err[256];
	int ret;

	if (boot_load_kernel(&m->vm.mem, image, size, handoff, &entry, err, sizeof(err)))
		die("--kernel %s: %s", m->opt.kernel, err);
	free(image);
	ret = mptable_write(&m->vm.mem, m->vm.nr_vcpus);
	if (ret)
		die("cannot write the MP table: %s", strerror(-ret));
	ret = vm_get_sregs(&m->vm, &sregs);
	if (ret)
		die("KVM_GET_SREGS: %s", strerror(-ret));
	if (x86_entry_setup(&m->vm.mem, &entry, &sregs, &regs))
		die("cannot set up the boot CPU state");
	if (vm_set_vcpu_state(&m->vm, &sregs, &regs, err, sizeof(err)))
		die("%s", err);
}

/* Releases what main() set up, devices first, once the vCPUs have stopped. */
static void tear_down(struct machine *m)
{
	io_loop_stop(&m->loop);
	io_loop_destroy(&m->loop);
	for (unsigned int i = 0; i < m->nr_blks; i++) {
		virtio_blk_destroy(m->blks[i]);
		blk_backend_destroy(m->backends[i]);
		blk_disk_close(&m->disks[i]);
		close(m->irq_fds[i]);
	}
	if (m->vsock) {
		virtio_vsock_destroy(m->vsock);
		vsock_backend_at_exit = NULL;
		vsock_backend_destroy(m->vsock_backend);
		close(m->vsock_irq_fd);
	}
	if (m->cons) {
		virtio_console_destroy(m->cons);
		close(m->cons_irq_fd);
	}
	console_backend_destroy(m->cons_backend);
	serial_8250_destroy(&m->console_uart);
	serial_8250_destroy(&m->command_uart);
	i8042_destroy(&m->kbc);
	vm_destroy(&m->vm);
	if (m->console && m->console != stdout)
		fclose(m->console);
}

static double ms_since_start(uint64_t ns)
{
	return ns ? (double)(ns - start_ns) / 1e6 : -1;
}

static void print_boot_time(const struct machine *m, uint64_t exit_ns)
{
	const struct {
		const char *what;
		uint64_t ns;
	} events[] = {
		{ "first KVM_RUN", m->first_run_ns },
		{ "first serial byte", m->first_serial_ns },
		{ "init started", m->control.marker_ns[GUEST_MARKER_INIT_STARTED] },
		{ "command finished", m->control.marker_ns[GUEST_MARKER_COMMAND_FINISHED] },
		{ "VM exited", exit_ns },
	};

	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		if (events[i].ns)
			fprintf(stderr, "boot-time: %-18s %9.1f ms\n", events[i].what,
				ms_since_start(events[i].ns));
		else
			fprintf(stderr, "boot-time: %-18s         - (not reached)\n",
				events[i].what);
	}
	fprintf(stderr, "boot-time: exits: %" PRIu64 " io, %" PRIu64 " mmio\n",
		m->vm.exits[KVM_EXIT_IO], m->vm.exits[KVM_EXIT_MMIO]);
}

int main(int argc, char **argv)
{
	static struct machine m;
	static char bootconfig[BOOTCONFIG_BLOCK_MAX];
	char cmdline[CMDLINE_MAX];
	struct boot_handoff handoff = { .cmdline = cmdline };
	char err[512];
	enum vm_stop_reason stop;
	size_t kernel_size;
	uint64_t exit_ns;
	void *kernel;
	int ret;

	start_ns = now_ns();
	/* The command's output streams line by line, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_options(argc, argv, &m.opt);
	kernel = read_kernel(m.opt.kernel, &kernel_size);
	check_erofs(m.opt.rootfs);
	if (m.opt.root_plan)
		add_plan_disk(&m.opt);
	for (unsigned int i = 0; i < m.opt.nr_disks; i++)
		open_disk(&m.disks[i], &m.opt.disks[i], i == 0);
	if (m.opt.serial_file) {
		m.console = fopen(m.opt.serial_file, "we");
		if (!m.console)
			die("--serial %s: %s", m.opt.serial_file, strerror(errno));
	} else if (m.opt.verbose) {
		m.console = stdout;
	}
	warn_if_pvm();

	ret = vm_create(&m.vm, m.opt.mem, m.opt.hugepages, m.opt.cpus, err,
			sizeof(err));
	if (ret == -ENOENT || ret == -EACCES)
		die("%s (no usable KVM here: tests/testhost/run provides one)", err);
	if (ret)
		die("%s", err);
	add_legacy_devices(&m);
	start_cmdline(&m.opt, cmdline, sizeof(cmdline));
	if (m.opt.interactive &&
	    guest_args_add_flag(cmdline, sizeof(cmdline), GUEST_FLAG_INTERACTIVE) < 0)
		die("kernel command line too long");
	add_disks(&m);
	if (m.opt.vsock_path)
		add_vsock(&m);
	if (m.opt.console)
		add_console(&m);
	handoff.initrd_size = finish_cmdline(&m, cmdline,
					     boot_cmdline_limit(kernel, kernel_size),
					     bootconfig, sizeof(bootconfig));
	handoff.initrd = handoff.initrd_size ? bootconfig : NULL;
	load_kernel(&m, kernel, kernel_size, &handoff);

	if (io_loop_start(&m.loop))
		die("cannot start the I/O thread");
	/* A terminal console goes raw only now: errors above print normally. */
	if (m.cons_backend && !strcmp(m.opt.console, "stdio") && isatty(STDIN_FILENO)) {
		ret = terminal_make_raw(STDIN_FILENO);
		if (ret < 0)
			die("cannot put the terminal in raw mode: %s", strerror(-ret));
	}
	stop = vm_run(&m.vm, first_run, &m, err, sizeof(err));
	exit_ns = now_ns();
	terminal_restore();
	tear_down(&m);
	fflush(stdout);
	if (m.opt.boot_time)
		print_boot_time(&m, exit_ns);

	if (stop == VM_STOP_ERROR) {
		fprintf(stderr, "vmm-run: the VM failed: %s\n", err);
		return EXIT_VM_FAILED;
	}
	if (!m.control.has_status) {
		if (stop == VM_STOP_TRIPLE_FAULT)
			fprintf(stderr, "vmm-run: the guest triple-faulted (%s)\n", err);
		fprintf(stderr, "vmm-run: the guest %s without reporting the command's "
			"status (%s%s)\n",
			stop == VM_STOP_HALTED ? "powered off" : "ended",
			stop == VM_STOP_HALTED ? "the command shut the VM down?" :
			"kernel panic or init failure?",
			m.opt.verbose || m.opt.serial_file ? "" : " --verbose shows the kernel log");
		if (m.bootconfig_used)
			fprintf(stderr, "vmm-run: note: the %u devices did not fit on the kernel "
				"command line and were announced in a bootconfig block, which "
				"needs a kernel with CONFIG_BOOT_CONFIG\n", m.nr_device_specs);
		return EXIT_NO_STATUS;
	}
	return m.control.status;
}
