# Installs Debian packages a test step needs, once: `apt_install PKG...` runs apt-get update and
# install only when given packages (callers pass the ones they found missing); quiet otherwise.
apt_install() {
  (($# == 0)) && return 0
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
