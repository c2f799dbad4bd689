# Shell helpers shared by erovm's build and test scripts (POSIX sh).

# Where built kernels and downloads live: outside the repository, so clones
# and `git clean` keep them. Override with EROVM_CACHE.
erovm_cache_dir() {
	printf '%s\n' "${EROVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/erovm}"
}

# Version of an installed Debian package, else its apt candidate, else "".
erovm_pkg_version() {
	v=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true)
	[ -n "$v" ] || v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" { print $2 }')
	printf '%s\n' "$v"
}

# First 12 hex digits of the SHA-256 of the given files and strings, used
# as cache keys: any change to an input makes a new cache entry.
erovm_hash() {
	for input in "$@"; do
		if [ -f "$input" ]; then cat "$input"; else printf '%s\n' "$input"; fi
	done | sha256sum | cut -c1-12
}
