/*
 * erovm-ctl: asks a running erovm guest's control service (vmm/guest_abi.h)
 * for things, through the monitor's hybrid vsock socket. See usage().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "ctl/hybrid_vsock.h"
#include "erovm_control.pb-c.h"
#include "vmm/guest_abi.h"
#include "vmm/mount_plan.h"

static void usage(FILE *out)
{
	fprintf(out,
"usage: erovm-ctl --vsock PATH COMMAND [ARGS]\n"
"\n"
"Talks to the control service of a running erovm guest, through the hybrid\n"
"vsock socket PATH of its monitor.\n"
"\n"
"commands:\n"
"  exec [-t] [-e KEY=VALUE]... [-w DIR] [-u UID[:GID]] [-r ROOT] [-i ID] -- COMMAND [ARG]...\n"
"        run COMMAND in the guest with erovm-ctl's stdin, stdout and stderr;\n"
"        SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to it. -t: on a new\n"
"        terminal (the local one in raw mode, its size kept in step);\n"
"        -e: add to the environment (PATH and HOME have defaults; -t adds\n"
"        TERM from ours); -w: working directory; -u: user and group\n"
"        (GID defaults to UID; default 0:0); -r: run inside this directory\n"
"        as root; -i: the process's id (default: made up)\n"
"  version           guest-init's version and the guest kernel's release\n"
"  uptime            seconds since the guest booted\n"
"  set-time [SECONDS]  set the guest's clock (default: this host's)\n"
"  shutdown          stop every process, unmount, sync and end the VM\n"
"  mount-plan FILE   apply the mount plan in FILE (vmm/mount_plan.h); print\n"
"                    the root it names and each step\n"
"\n"
"exit status: exec: the command's (128 + N if signal N killed it), 127 if it\n"
"was not found, 126 if it could not be started, %d if erovm-ctl failed;\n"
"others: 0 done, 1 failed; 2: usage error.\n",
		CTL_EXIT_FAILURE);
}

void ctl_error(const char *fmt, ...)
{
	va_list ap;

	fputs("erovm-ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("erovm-ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see erovm-ctl --help)\n", stderr);
	exit(2);
}

int ctl_connect_port(const char *vsock, unsigned int port)
{
	char err[512];
	int fd = hybrid_vsock_connect(vsock, port, CTL_CONNECT_TIMEOUT_MS, err, sizeof(err));

	if (fd < 0) {
		ctl_error("%s", err);
		return -1;
	}
	return fd;
}

struct ttrpc_client *ctl_connect_control(const char *vsock)
{
	struct ttrpc_client *client;
	int fd = ctl_connect_port(vsock, GUEST_VSOCK_CONTROL_PORT);

	if (fd < 0)
		return NULL;
	client = ttrpc_client_new(fd);
	if (!client) {
		ctl_error("out of memory");
		close(fd);
	}
	return client;
}

const char *ctl_call_error(int ret)
{
	switch (ret) {
	case -EPIPE:
		return "the guest closed the control connection";
	case -ETIMEDOUT:
		return "the guest did not answer in time";
	case -EPROTO:
		return "the guest broke the ttrpc protocol";
	default:
		return strerror(-ret);
	}
}

/*
 * Calls @service/@method with @request and unpacks the answer with
 * @descriptor (NULL: an Empty answer). Returns the answer (or a non-NULL
 * dummy for Empty), or NULL after reporting what went wrong.
 */
static ProtobufCMessage *simple_call(const char *vsock, const char *service, const char *method,
				     const ProtobufCMessage *request,
				     const ProtobufCMessageDescriptor *descriptor)
{
	static Erovm__Control__V1__Empty empty = EROVM__CONTROL__V1__EMPTY__INIT;
	struct ttrpc_client *client = ctl_connect_control(vsock);
	struct ttrpc_result result = { 0 };
	ProtobufCMessage *answer = NULL;
	int ret;

	if (!client)
		return NULL;
	ret = ttrpc_client_call_message(client, service, method, request ? request : &empty.base,
					&result, CTL_CALL_TIMEOUT_MS);
	if (ret < 0) {
		ctl_error("%s: %s", method, ctl_call_error(ret));
	} else if (result.code != TTRPC_OK) {
		ctl_error("%s: %s (%s)", method, result.message, ttrpc_code_name(result.code));
	} else if (!descriptor) {
		answer = &empty.base;
	} else {
		answer = protobuf_c_message_unpack(descriptor, NULL, result.payload_len, result.payload);
		if (!answer)
			ctl_error("%s: the guest's answer does not decode", method);
	}
	ttrpc_result_clear(&result);
	ttrpc_client_free(client);
	return answer;
}

static int cmd_version(const char *vsock)
{
	Erovm__Control__V1__VersionResponse *v;

	v = (Erovm__Control__V1__VersionResponse *)simple_call(
		vsock, GUEST_CONTROL_SERVICE_SYSTEM, "Version", NULL,
		&erovm__control__v1__version_response__descriptor);
	if (!v)
		return 1;
	printf("guest-init: %s (control API %u)\nkernel: %s\n", v->init_version, v->api_version,
	       v->kernel_release);
	erovm__control__v1__version_response__free_unpacked(v, NULL);
	return 0;
}

static int cmd_uptime(const char *vsock)
{
	Erovm__Control__V1__UptimeResponse *u;

	u = (Erovm__Control__V1__UptimeResponse *)simple_call(
		vsock, GUEST_CONTROL_SERVICE_SYSTEM, "Uptime", NULL,
		&erovm__control__v1__uptime_response__descriptor);
	if (!u)
		return 1;
	printf("%" PRIu64 ".%03" PRIu64 "\n", u->uptime_ns / 1000000000u,
	       u->uptime_ns / 1000000u % 1000u);
	erovm__control__v1__uptime_response__free_unpacked(u, NULL);
	return 0;
}

static int cmd_set_time(const char *vsock, int argc, char **argv)
{
	Erovm__Control__V1__SetTimeRequest request = EROVM__CONTROL__V1__SET_TIME_REQUEST__INIT;
	Erovm__Control__V1__Timestamp time = EROVM__CONTROL__V1__TIMESTAMP__INIT;
	struct timespec now;
	char *end;

	if (argc > 2)
		usage_error("set-time takes at most one argument");
	if (argc == 2) {
		errno = 0;
		time.seconds = strtoll(argv[1], &end, 10);
		if (errno || end == argv[1] || *end || time.seconds < 0)
			usage_error("set-time: \"%s\" is not a number of seconds since 1970", argv[1]);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		time.seconds = now.tv_sec;
		time.nanos = (int32_t)now.tv_nsec;
	}
	request.time = &time;
	return simple_call(vsock, GUEST_CONTROL_SERVICE_SYSTEM, "SetTime", &request.base, NULL) ? 0 : 1;
}

static int cmd_shutdown(const char *vsock)
{
	return simple_call(vsock, GUEST_CONTROL_SERVICE_SYSTEM, "Shutdown", NULL, NULL) ? 0 : 1;
}

/* Reads a plan file of at most MOUNT_PLAN_MAX_TEXT bytes into *@len. */
static char *read_plan(const char *path, size_t *plan_len)
{
	char *text = malloc(MOUNT_PLAN_MAX_TEXT + 1);
	size_t len = 0;
	FILE *file;

	if (!text) {
		ctl_error("out of memory");
		return NULL;
	}
	file = fopen(path, "re");
	if (!file) {
		ctl_error("%s: %s", path, strerror(errno));
		free(text);
		return NULL;
	}
	len = fread(text, 1, MOUNT_PLAN_MAX_TEXT + 1, file);
	if (ferror(file) || len > MOUNT_PLAN_MAX_TEXT || memchr(text, '\0', len)) {
		ctl_error("%s: %s", path, ferror(file) ? "read error" :
			  len > MOUNT_PLAN_MAX_TEXT ? "longer than a plan may be" : "holds a NUL byte");
		fclose(file);
		free(text);
		return NULL;
	}
	fclose(file);
	*plan_len = len;
	return text;
}

static int cmd_mount_plan(const char *vsock, int argc, char **argv)
{
	Erovm__Control__V1__ApplyRequest request = EROVM__CONTROL__V1__APPLY_REQUEST__INIT;
	Erovm__Control__V1__ApplyResponse *applied;

	if (argc != 2)
		usage_error("mount-plan takes one FILE");
	request.plan.data = (uint8_t *)read_plan(argv[1], &request.plan.len);
	if (!request.plan.data)
		return 1;
	applied = (Erovm__Control__V1__ApplyResponse *)simple_call(
		vsock, GUEST_CONTROL_SERVICE_MOUNT, "Apply", &request.base,
		&erovm__control__v1__apply_response__descriptor);
	free(request.plan.data);
	if (!applied)
		return 1;
	printf("root: %s\n", applied->root[0] ? applied->root : "(none)");
	for (size_t i = 0; i < applied->n_steps; i++)
		printf("step: %s\n", applied->steps[i]);
	erovm__control__v1__apply_response__free_unpacked(applied, NULL);
	return 0;
}

static bool parse_id(const char *s, unsigned long *value)
{
	char *end;

	errno = 0;
	*value = strtoul(s, &end, 10);
	return !errno && end != s && !*end && *s != '-' && *value < UINT32_MAX;
}

static int cmd_exec(const char *vsock, int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct exec_options opt = { .vsock = vsock };
	unsigned long uid, gid;
	char *colon;
	int c;

	opt.env = calloc((size_t)argc, sizeof(*opt.env));
	if (!opt.env) {
		ctl_error("out of memory");
		return CTL_EXIT_FAILURE;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "+te:w:u:r:i:h", long_options, NULL)) != -1) {
		switch (c) {
		case 't':
			opt.terminal = true;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=')
				usage_error("exec -e %s: expected KEY=VALUE", optarg);
			opt.env[opt.env_count++] = optarg;
			break;
		case 'w':
			opt.cwd = optarg;
			break;
		case 'u':
			colon = strchr(optarg, ':');
			if (colon)
				*colon = '\0';
			if (!parse_id(optarg, &uid) || (colon && !parse_id(colon + 1, &gid)))
				usage_error("exec -u: expected UID or UID:GID, numbers");
			opt.uid = (uid_t)uid;
			opt.gid = colon ? (gid_t)gid : (gid_t)uid;
			break;
		case 'r':
			opt.root = optarg;
			break;
		case 'i':
			opt.id = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage_error("exec: bad option");
		}
	}
	if (optind >= argc)
		usage_error("exec: no command; write it after \"--\"");
	opt.argv = argv + optind;
	opt.argc = argc - optind;
	c = ctl_exec(&opt);
	free(opt.env);
	return c;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "vsock", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *vsock = NULL, *command;
	int c;

	/* A reader that went away shows as EPIPE where it matters. */
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
		switch (c) {
		case 'v':
			vsock = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage_error("bad option");
		}
	}
	if (!vsock)
		usage_error("--vsock PATH is required");
	if (optind >= argc)
		usage_error("no command");
	command = argv[optind];
	argc -= optind;
	argv += optind;
	if (!strcmp(command, "exec"))
		return cmd_exec(vsock, argc, argv);
	if (!strcmp(command, "version") || !strcmp(command, "uptime") ||
	    !strcmp(command, "shutdown")) {
		if (argc != 1)
			usage_error("%s takes no arguments", command);
		if (!strcmp(command, "version"))
			return cmd_version(vsock);
		return !strcmp(command, "uptime") ? cmd_uptime(vsock) : cmd_shutdown(vsock);
	}
	if (!strcmp(command, "set-time"))
		return cmd_set_time(vsock, argc, argv);
	if (!strcmp(command, "mount-plan"))
		return cmd_mount_plan(vsock, argc, argv);
	usage_error("unknown command \"%s\"", command);
}
