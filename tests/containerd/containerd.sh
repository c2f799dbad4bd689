# Bash library for the containerd tests: a private containerd, started in
# a scratch directory and torn down with everything it made.
#
#   . tests/containerd/containerd.sh
#   containerd_start DIR [SHIM]   mounts a tmpfs on DIR (containerd's root
#                                 and state must not be on the test host's
#                                 9p root: overlayfs cannot use it), writes
#                                 DIR/config.toml, starts Debian's
#                                 containerd with its socket at
#                                 DIR/containerd.sock and waits until
#                                 `ctr version` answers. SHIM, if given,
#                                 is linked as DIR/bin/containerd-shim-erovm-v1
#                                 on containerd's PATH (runtime
#                                 io.containerd.erovm.v1). Returns non-zero
#                                 with the reason and containerd's log on
#                                 stderr if it does not come up.
#   ctr_run_timeout SECONDS ARGS  `ctr ARGS` against that containerd in
#                                 namespace CTR_NAMESPACE (default "erovm"),
#                                 killed after SECONDS (exit 124).
#   tctr ARGS                     ctr_run_timeout with CTR_TIMEOUT (60).
#   containerd_stop               kills and deletes every task, stops
#                                 containerd, unmounts and removes DIR.
#                                 Safe to call twice; call it on EXIT.
#
# Variables set: CONTAINERD_DIR, CONTAINERD_SOCKET, CONTAINERD_LOG,
# CONTAINERD_PID. The shim's environment is containerd's: export
# EROVM_SHIM_* (see README, "containerd") before containerd_start.

CTR_NAMESPACE=${CTR_NAMESPACE:-erovm}
CTR_TIMEOUT=${CTR_TIMEOUT:-60}
CONTAINERD_DIR= CONTAINERD_SOCKET= CONTAINERD_LOG= CONTAINERD_PID=

ctr_run_timeout() {
	local seconds=$1
	shift
	timeout -k 5 "$seconds" ctr --address "$CONTAINERD_SOCKET" --namespace "$CTR_NAMESPACE" "$@"
}

tctr() {
	ctr_run_timeout "$CTR_TIMEOUT" "$@"
}

containerd_start() {
	local dir=$1 shim=${2:-}
	command -v containerd >/dev/null && command -v ctr >/dev/null || {
		echo "containerd: containerd or ctr not found (package containerd; run make deps)" >&2
		return 1
	}
	mkdir -p "$dir" || return 1
	mount -t tmpfs -o mode=0711 containerd-test "$dir" || {
		echo "containerd: cannot mount a tmpfs on $dir (needs root)" >&2
		return 1
	}
	CONTAINERD_DIR=$dir
	CONTAINERD_SOCKET=$dir/containerd.sock
	CONTAINERD_LOG=$dir/containerd.log
	mkdir -p "$dir/bin" "$dir/root" "$dir/state" "$dir/opt"
	if [[ -n $shim ]]; then
		ln -s "$shim" "$dir/bin/containerd-shim-erovm-v1" || return 1
	fi
	cat >"$dir/config.toml" <<-EOF
	version = 2
	root = "$dir/root"
	state = "$dir/state"
	# The CRI plugin is not used by ctr and slows the start down.
	disabled_plugins = ["io.containerd.grpc.v1.cri"]

	[grpc]
	  address = "$CONTAINERD_SOCKET"

	[plugins."io.containerd.internal.v1.opt"]
	  path = "$dir/opt"

	# What a Kubernetes node would use (RuntimeClass handler "erovm").
	[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.erovm]
	  runtime_type = "io.containerd.erovm.v1"
	EOF
	# Shims are found on containerd's PATH: DIR/bin first, then the
	# system's (containerd-shim-runc-v2, runc).
	PATH=$dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		setsid containerd --config "$dir/config.toml" --log-level info \
		</dev/null >"$CONTAINERD_LOG" 2>&1 &
	CONTAINERD_PID=$!
	local i
	for ((i = 0; i < 240; i++)); do
		if ! kill -0 "$CONTAINERD_PID" 2>/dev/null; then
			echo "containerd: exited while starting; its log:" >&2
			tail -n 30 "$CONTAINERD_LOG" >&2
			CONTAINERD_PID=
			return 1
		fi
		[[ -S $CONTAINERD_SOCKET ]] && ctr_run_timeout 10 version >/dev/null 2>&1 && return 0
		sleep 0.25
	done
	echo "containerd: no answer on $CONTAINERD_SOCKET after 60 s; its log:" >&2
	tail -n 30 "$CONTAINERD_LOG" >&2
	return 1
}

containerd_stop() {
	[[ -n $CONTAINERD_DIR ]] || return 0
	local ns id
	if [[ -n $CONTAINERD_PID ]] && kill -0 "$CONTAINERD_PID" 2>/dev/null; then
		for ns in $(ctr_run_timeout 10 namespaces ls -q 2>/dev/null); do
			for id in $(CTR_NAMESPACE=$ns ctr_run_timeout 10 task ls -q 2>/dev/null); do
				CTR_NAMESPACE=$ns ctr_run_timeout 20 task kill -s SIGKILL "$id" >/dev/null 2>&1
				CTR_NAMESPACE=$ns ctr_run_timeout 30 task delete -f "$id" >/dev/null 2>&1
			done
			for id in $(CTR_NAMESPACE=$ns ctr_run_timeout 10 containers ls -q 2>/dev/null); do
				CTR_NAMESPACE=$ns ctr_run_timeout 30 containers delete "$id" >/dev/null 2>&1
			done
		done
		kill "$CONTAINERD_PID" 2>/dev/null
		local i
		for ((i = 0; i < 40; i++)); do
			kill -0 "$CONTAINERD_PID" 2>/dev/null || break
			sleep 0.25
		done
		kill -KILL "$CONTAINERD_PID" 2>/dev/null
		wait "$CONTAINERD_PID" 2>/dev/null
	fi
	CONTAINERD_PID=
	# Snapshot and task mounts live under DIR: deepest first.
	local mnt
	while read -r mnt; do
		umount -l "$mnt" 2>/dev/null
	done < <(awk -v d="$CONTAINERD_DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
	umount -l "$CONTAINERD_DIR" 2>/dev/null
	rmdir "$CONTAINERD_DIR" 2>/dev/null
	CONTAINERD_DIR=
}
