# bash completion for netkit. Generated from the Click definitions by
# `python -m netkit.devtools.gendocs`; printed by `netkit completion bash`.
# Install: netkit completion bash > ~/.local/share/bash-completion/completions/netkit
_netkit_completion() {
    local IFS=$'\n'
    local response

    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD _NETKIT_COMPLETE=bash_complete $1)

    for completion in $response; do
        IFS=',' read type value <<< "$completion"

        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=($value)
        fi
    done

    return 0
}

_netkit_completion_setup() {
    complete -o nosort -F _netkit_completion netkit
}

_netkit_completion_setup;
