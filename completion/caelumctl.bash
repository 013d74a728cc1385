# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# bash completion for caelumctl, in the manner of bpftool's: objects, then commands, then
# keywords and names. Service, database and port names come from the running caelumd when it
# answers (caelumctl's own list commands); otherwise only keywords complete.
# Installed as /usr/share/bash-completion/completions/caelumctl.

# caelumctl with the user's -c FILE, quiet, never waiting long on a stuck daemon.
_caelumctl_q()
{
    timeout 2 "${_caelumctl_cmd[@]}" "$@" 2>/dev/null
}

_caelumctl_services()
{
    COMPREPLY+=( $(compgen -W "$(_caelumctl_q service list | awk 'NR > 1 { print $1 }')" -- "$cur") )
}

_caelumctl_dbs()
{
    COMPREPLY+=( $(compgen -W "$(_caelumctl_q db list | awk 'NR > 1 { print $1 }')" -- "$cur") )
}

_caelumctl_hosts()
{
    COMPREPLY+=( $(compgen -W "$(_caelumctl_q host list | awk 'NR > 1 { print $1 }')" -- "$cur") )
}

_caelumctl_ports()
{
    COMPREPLY+=( $(compgen -W "$(_caelumctl_q port list | awk 'NR > 1 { print $1 "/" $2 }')" \
        -- "$cur") )
}

_caelumctl()
{
    local cur prev words cword
    _init_completion || return

    local -a _caelumctl_cmd=( "${words[0]}" )
    local i obj= cmd= objidx=0
    # Global options first; remember -c FILE for the daemon queries.
    for (( i = 1; i < cword; i++ )); do
        case ${words[i]} in
            -c|--config)
                _caelumctl_cmd+=( -c "${words[i + 1]}" ); (( i++ )) ;;
            -*) ;;
            *) obj=${words[i]}; objidx=$i; break ;;
        esac
    done

    if [[ -z $obj ]]; then
        case $prev in
            -c|--config) _filedir json; return ;;
        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=( $(compgen -W '-c --config -j --json -p --pretty -v --verbose
                -V --version -h --help' -- "$cur") )
            return
        fi
        COMPREPLY=( $(compgen -W 'check status reload teardown service port events db
            resources verify token mcp host run prog map link help' -- "$cur") )
        return
    fi
    (( objidx + 1 < cword )) && cmd=${words[objidx + 1]}
    local nargs=$(( cword - objidx - 1 ))  # words after the object, before the cursor

    case $obj in
        service|db)
            local names=_caelumctl_services cmds='list show apply delete where help'
            [[ $obj == db ]] && names=_caelumctl_dbs cmds='list show apply delete resolve help'
            if (( nargs == 0 )); then
                COMPREPLY=( $(compgen -W "$cmds" -- "$cur") )
            elif (( nargs == 1 )); then
                case $cmd in
                    show|delete|resolve|where) $names ;;
                    apply) _filedir json ;;
                esac
            elif [[ $obj == db ]] && [[ $cmd == apply || $cmd == delete ]]; then
                # db apply FILE [host HOST], db delete NAME [host HOST]
                case $nargs in
                    2) COMPREPLY=( $(compgen -W 'host' -- "$cur") ) ;;
                    3) _caelumctl_hosts ;;
                esac
            fi
            ;;
        host)
            if (( nargs == 0 )); then
                COMPREPLY=( $(compgen -W 'list show help' -- "$cur") )
            elif (( nargs == 1 )) && [[ $cmd == show ]]; then
                _caelumctl_hosts
            fi
            ;;
        port)
            if (( nargs == 0 )); then
                COMPREPLY=( $(compgen -W 'list show reserve release alloc who help' -- "$cur") )
                return
            fi
            case $cmd:$nargs in
                release:1|who:1) _caelumctl_ports ;;
                alloc:1) COMPREPLY=( $(compgen -W 'service' -- "$cur") ) ;;
                reserve:2|reserve:4) COMPREPLY=( $(compgen -W 'service host' -- "$cur") ) ;;
                release:2) COMPREPLY=( $(compgen -W 'host' -- "$cur") ) ;;
                reserve:3|reserve:5|release:3)
                    case $prev in
                        service) _caelumctl_services ;;
                        host) _caelumctl_hosts ;;
                    esac ;;
                alloc:2) _caelumctl_services ;;
                alloc:3) COMPREPLY=( $(compgen -W 'proto' -- "$cur") ) ;;
                alloc:4) COMPREPLY=( $(compgen -W 'tcp udp' -- "$cur") ) ;;
            esac
            ;;
        events)
            case $prev in
                service) _caelumctl_services ;;
                type) COMPREPLY=( $(compgen -W 'bind_denied device_denied
                    task_budget_exceeded cpu_over_allocation db_connect_denied db_conn_limit
                    bandwidth_exceeded
                    db_unreachable db_recovered health_changed credential_drift
                    integrity_repaired policy_applied reload_rejected events_lost token_rotated
                    verification_passed verification_failed registry_recovered
                    service_started service_stopped daemon_started daemon_stopped' -- "$cur") ) ;;
                host|limit) ;;
                *) COMPREPLY=( $(compgen -W 'follow service host type limit' -- "$cur") ) ;;
            esac
            ;;
        check)
            case $nargs:$prev in
                0:*) COMPREPLY=( $(compgen -W 'service' -- "$cur") ) ;;
                1:service) _caelumctl_services ;;
                2:*) COMPREPLY=( $(compgen -W 'wait' -- "$cur") ) ;;
            esac
            ;;
        run)
            local j
            for (( j = objidx + 1; j < cword; j++ )); do
                # After "--": the command to run and its arguments.
                if [[ ${words[j]} == -- ]]; then
                    if (( j + 1 == cword )); then
                        COMPREPLY=( $(compgen -c -- "$cur") )
                    else
                        _filedir
                    fi
                    return
                fi
            done
            case $prev in
                --wait) ;;
                *)
                    if [[ $cur == -* ]]; then
                        COMPREPLY=( $(compgen -W '--wait --' -- "$cur") )
                    else
                        _caelumctl_services
                    fi
                    ;;
            esac
            ;;
        token)
            (( nargs == 0 )) && COMPREPLY=( $(compgen -W 'show rotate help' -- "$cur") )
            ;;
        prog|link)
            (( nargs == 0 )) && COMPREPLY=( $(compgen -W 'show list help' -- "$cur") )
            ;;
        map)
            if (( nargs == 0 )); then
                COMPREPLY=( $(compgen -W 'show list dump help' -- "$cur") )
            elif [[ $cmd == dump ]] && (( nargs == 1 )); then
                COMPREPLY=( $(compgen -W 'cm_port_rules cm_services cm_config cm_stats
                    cm_agg' -- "$cur") )
            fi
            ;;
    esac
} &&
    complete -F _caelumctl caelumctl

# ex: filetype=sh
