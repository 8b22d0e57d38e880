# Sourced by the experiment scripts, after they set RUN (and CODE): go to the project, make RUN,
# and define `step NAME LOG COMMAND...`, which runs COMMAND with its output appended to LOG and
# its start, end and status appended to RUN/stages.log (the stage times docs/results.md reports).
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

share() {  # share FROM TO FOLDER...: TO starts from FROM's config and finished stages (linked, not copied)
    local from=$1 to=$2
    shift 2
    mkdir -p "$to"
    for folder in "$@"; do
        [ -e "$to/$folder" ] || ln -s "$from/$folder" "$to/$folder"
    done
    [ -f "$to/config.json" ] || cp "$from/config.json" "$to/config.json"
}
