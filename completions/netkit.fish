# fish completion for netkit. Generated from the Click definitions by
# `python -m netkit.devtools.gendocs`; printed by `netkit completion fish`.
# Install: netkit completion fish > ~/.config/fish/completions/netkit.fish
function __netkit_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l words (string join ' ' -- (string escape -- $tokens $current))
    set -l response (env _NETKIT_COMPLETE=zsh_complete COMP_WORDS="$words" COMP_CWORD=(count $tokens) netkit 2>/dev/null)
    set -l n (count $response)
    set -l i 1
    while test (math $i + 2) -le $n
        set -l kind $response[$i]
        set -l value $response[(math $i + 1)]
        set -l help $response[(math $i + 2)]
        set i (math $i + 3)
        switch $kind
            case dir
                __fish_complete_directories $current
            case file
                __fish_complete_path $current
            case plain
                if test "$help" = _
                    printf '%s\n' $value
                else
                    printf '%s\t%s\n' (string replace -a '\:' ':' -- $value) $help
                end
        end
    end
end

complete --command netkit --no-files --arguments '(__netkit_complete)'
