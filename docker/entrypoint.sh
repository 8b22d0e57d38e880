#!/bin/bash
# Container entrypoint for every stage:
#  1. started as root: give the `worldmodels` user the host user's uid/gid, so the
#     files written to the bind-mounted run directory belong to the host user, then
#     drop root with setpriv and run this script again as that user;
#  2. as that user: start a virtual X display (Xvfb) unless DISPLAY is already set,
#     so anything that opens a window works headless, then run the command.
#
# Environment:
#   HOST_UID, HOST_GID  the ids to run as (default: the owner of $RUNS_DIR if that is
#                       not root, else 1000). HOST_UID=0 keeps root.
#   RUNS_DIR            the mounted run directory (default /app/runs).
#   XVFB                0 to skip the virtual display.
#   XVFB_SCREEN         its geometry (default 1280x1024x24).
# Started with `docker run --user UID:GID` (compose `user:`), step 1 is skipped.
set -euo pipefail

runs_dir="${RUNS_DIR:-/app/runs}"
user_name=worldmodels

if [ "$(id -u)" = 0 ] && [ -z "${ENTRYPOINT_DROPPED:-}" ]; then
    owner_uid=""
    owner_gid=""
    if [ -d "${runs_dir}" ]; then
        owner_uid="$(stat -c %u "${runs_dir}")"
        owner_gid="$(stat -c %g "${runs_dir}")"
    fi
    if [ -n "${owner_uid}" ] && [ "${owner_uid}" != 0 ]; then
        default_uid="${owner_uid}"
        default_gid="${owner_gid}"
    else
        default_uid=1000
        default_gid=1000
    fi
    uid="${HOST_UID:-${default_uid}}"
    gid="${HOST_GID:-${default_gid}}"
    case "${uid}${gid}" in
        *[!0-9]*) echo "entrypoint: HOST_UID=${uid} and HOST_GID=${gid} must be numbers" >&2; exit 2 ;;
    esac
    if [ "${uid}" = 0 ]; then
        export ENTRYPOINT_DROPPED=1
        exec "$0" "$@"
    fi
    if [ "$(id -g "${user_name}")" != "${gid}" ]; then
        groupmod --non-unique --gid "${gid}" "${user_name}"
    fi
    if [ "$(id -u "${user_name}")" != "${uid}" ]; then
        usermod --non-unique --uid "${uid}" --gid "${gid}" "${user_name}"
    fi
    chown "${uid}:${gid}" "/home/${user_name}"
    # A run directory that Docker created for a missing bind-mount source is root's:
    # hand that top folder (only it) to the user so the stages can write into it.
    if [ -d "${runs_dir}" ] && [ "$(stat -c %u "${runs_dir}")" = 0 ]; then
        chown "${uid}:${gid}" "${runs_dir}"
    fi
    export ENTRYPOINT_DROPPED=1 HOME="/home/${user_name}" USER="${user_name}" LOGNAME="${user_name}"
    exec setpriv --reuid="${uid}" --regid="${gid}" --init-groups -- "$0" "$@"
fi

if [ "${XVFB:-1}" != 0 ] && [ -z "${DISPLAY:-}" ]; then
    display_number=99
    while [ -e "/tmp/.X11-unix/X${display_number}" ] || [ -e "/tmp/.X${display_number}-lock" ]; do
        display_number=$((display_number + 1))
    done
    Xvfb ":${display_number}" -screen 0 "${XVFB_SCREEN:-1280x1024x24}" -nolisten tcp >/tmp/xvfb.log 2>&1 &
    for _ in $(seq 50); do
        [ -e "/tmp/.X11-unix/X${display_number}" ] && break
        sleep 0.1
    done
    if [ -e "/tmp/.X11-unix/X${display_number}" ]; then
        export DISPLAY=":${display_number}"
    else
        echo "entrypoint: Xvfb did not start (see /tmp/xvfb.log); continuing without a display" >&2
    fi
fi

exec "$@"
