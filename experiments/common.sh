# Sourced by the experiment scripts, after they set RUN (and CODE): go to the project, make RUN,
# and define `step NAME LOG COMMAND...`, which runs COMMAND with its output appended to LOG and
# its start, end and status appended to RUN/stages.log (the stage times the README reports).
cd "$CODE" || exit 1
mkdir -p "$RUN"

step() {
    local name=$1 log=$2
    shift 2
    echo "$(date -Is) start $name" >> "$RUN/stages.log"
    "$@" >> "$log" 2>&1
    local status=$?
    echo "$(date -Is) end $name status $status" >> "$RUN/stages.log"
    return $status
}
