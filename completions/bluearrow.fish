# fish completion for bluearrow; install as ~/.config/fish/completions/bluearrow.fish
set -l commands help version compose config
complete -c bluearrow -f
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a help -d 'show help for bluearrow or one of its commands'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a version -d 'print the version'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a compose -d 'build a message from options and print it'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a config -d "check the configuration or show an account's settings"
complete -c bluearrow -n "__fish_seen_subcommand_from config; and not __fish_seen_subcommand_from check show list" -a 'check show list'
complete -c bluearrow -n "__fish_seen_subcommand_from config" -s C -l file -r -F -d 'configuration file'
complete -c bluearrow -n "__fish_seen_subcommand_from config" -s a -l account -x -d 'account to show'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -l help -d 'show the usage'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -l version -d 'print the version'
complete -c bluearrow -n "__fish_seen_subcommand_from help" -a "$commands"

set -l c "__fish_seen_subcommand_from compose"
complete -c bluearrow -n $c -l from -x -d 'author address'
complete -c bluearrow -n $c -l to -x -d 'recipient addresses'
complete -c bluearrow -n $c -l cc -x -d 'carbon-copy addresses'
complete -c bluearrow -n $c -l bcc -x -d 'blind recipients (never written)'
complete -c bluearrow -n $c -l subject -x -d 'subject'
complete -c bluearrow -n $c -l body -r -F -d 'text body (- for stdin)'
complete -c bluearrow -n $c -l html -r -F -d 'HTML body'
complete -c bluearrow -n $c -l attach -r -F -d 'attach a file'
complete -c bluearrow -n $c -l attach-type -x -d 'content type of the previous --attach' -a '(string match -r "^[a-z][^\s#]*/\S+" < /etc/mime.types)'
complete -c bluearrow -n $c -l attach-name -x -d 'file name shown for the previous --attach'
complete -c bluearrow -n $c -l header -x -d "extra header field 'Name: value'"
complete -c bluearrow -n $c -l in-reply-to -x -d 'message replied to, <id@host>'
complete -c bluearrow -n $c -l references -x -d 'message ids of the thread'
complete -c bluearrow -n $c -l crlf -d 'end lines with CRLF'
complete -c bluearrow -n $c -l 8bit -d 'allow 8bit text parts'
complete -c bluearrow -n $c -l help -d 'show the usage'
