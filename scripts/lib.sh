# Shared steps of scripts/install-and-run and scripts/test (sourced, not run).

# install_debian_packages PKG...: apt-get install whatever is not installed yet.
install_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# make_venv EXTRAS: create .venv (once) and install the project (editable) with
# EXTRAS, e.g. "[test]". pip's chatter goes to .venv/pip.log, shown on failure.
make_venv() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    if ! { .venv/bin/python -m pip install --upgrade pip &&
           .venv/bin/python -m pip install -e ".$1"; } > .venv/pip.log 2>&1; then
        cat .venv/pip.log
        echo "installing the project into .venv failed (log above)" >&2
        return 1
    fi
}

# link_command LINK TARGET: make LINK (e.g. /usr/local/bin/drivegate) a symbolic
# link to TARGET, replacing an older link but never a file of its own.
link_command() {
    if [ -e "$1" ] && [ ! -L "$1" ]; then
        echo "$1 exists and is not a link: left alone (the command is $2)" >&2
        return 0
    fi
    mkdir -p "$(dirname "$1")"
    ln -sfn "$2" "$1"
    case ":$PATH:" in
        *":$(dirname "$1"):"*) ;;
        *) echo "note: $(dirname "$1") is not on your PATH; add it, or run $2" >&2 ;;
    esac
}
