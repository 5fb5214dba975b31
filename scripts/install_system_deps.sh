#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the engine needs, only those missing (one apt-get call at most).
#   xvfb xauth        virtual display for window tests and `make demo` on a display-less machine with Xvfb
#   portaudio19-dev   PortAudio headers: pyaudio has no Linux wheel and builds from source
#   espeak-ng         speech for the synthetic presenter (libespeak-ng via ctypes)
#   libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri   headless OpenGL through EGL (Mesa llvmpipe on CPU machines)
#   python3-venv      `python3 -m venv` on Debian's own Python
set -euo pipefail

packages=(xvfb xauth portaudio19-dev espeak-ng libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri)
# Debian's python3 needs python3-venv; a pyenv or python.org Python has venv built in.
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
