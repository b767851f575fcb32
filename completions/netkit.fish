# fish completion for netkit. Generated from the Click definitions by
# `python -m netkit.devtools.gendocs`; printed by `netkit completion fish`.
# Install: netkit completion fish > ~/.config/fish/completions/netkit.fish
function _netkit_completion;
    set -l response (env _NETKIT_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) COMP_CWORD=(commandline -t) netkit);

    for completion in $response;
        set -l metadata (string split 
 $completion);

        if test $metadata[1] = "dir";
            __fish_complete_directories $metadata[2];
        else if test $metadata[1] = "file";
            __fish_complete_path $metadata[2];
        else if test $metadata[1] = "plain";
            if test $metadata[3] != "_";
                echo $metadata[2]	$metadata[3];
            else;
                echo $metadata[2];
            end;
        end;
    end;
end;

complete --no-files --command netkit --arguments "(_netkit_completion)";
