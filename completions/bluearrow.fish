# fish completion for bluearrow; install as ~/.config/fish/completions/bluearrow.fish
# (and as bluearrow-sendmail.fish for the sendmail personality)
set -l commands help version compose send check config sendmail mx outbox oauth2

# Account names of the configuration (-C FILE on the command line, else the default search).
function __bluearrow_accounts
    set -l tokens (commandline -opc)
    set -l file
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case -C --file
                set -l n (math $i + 1)
                test $n -le (count $tokens); and set file -C $tokens[$n]
            case '-C?*'
                set file -C (string sub -s 3 -- $tokens[$i])
        end
    end
    bluearrow config list $file 2>/dev/null
end

complete -c bluearrow -f
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a help -d 'show help for bluearrow or one of its commands'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a version -d 'print the version'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a compose -d 'build a message from options and print it'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a send -d 'build a message and submit it through an account'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a check -d 'test an account: TLS, capabilities, authentication'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a config -d 'create or check the configuration, show an account'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a sendmail -d 'submit a message read on standard input'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a mx -d 'show the route direct delivery takes to a domain'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a outbox -d 'list, show, flush, retry or remove queued messages'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -a oauth2 -d 'authorize an account for OAuth2'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -l help -d 'show the usage'
complete -c bluearrow -n "not __fish_seen_subcommand_from $commands" -l version -d 'print the version'
complete -c bluearrow -n "__fish_seen_subcommand_from help" -a "$commands"

set -l c "__fish_seen_subcommand_from compose send"
complete -c bluearrow -n $c -l from -x -d 'author address'
complete -c bluearrow -n $c -l to -x -d 'recipient addresses'
complete -c bluearrow -n $c -l cc -x -d 'carbon-copy addresses'
complete -c bluearrow -n $c -l bcc -x -d 'blind recipients (never written)'
complete -c bluearrow -n $c -l reply-to -x -d 'addresses replies should go to'
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

# -C, -a, -v for send, check, config, mx (and -C, -a for oauth2)
set -l a "__fish_seen_subcommand_from send check config mx oauth2"
complete -c bluearrow -n $a -s C -l file -r -F -d 'configuration file'
complete -c bluearrow -n $a -s a -l account -x -a '(__bluearrow_accounts)' -d 'account'
complete -c bluearrow -n "__fish_seen_subcommand_from send check mx" -s v -l verbose -d 'show the SMTP dialogue'
complete -c bluearrow -n "__fish_seen_subcommand_from mx" -l probe -d 'connect to port 25 of each host: STARTTLS, certificate'
complete -c bluearrow -n "__fish_seen_subcommand_from send" -l dry-run -d 'show what would be sent; connect to nothing'
complete -c bluearrow -n "__fish_seen_subcommand_from send" -l progress -d 'show a progress bar'
complete -c bluearrow -n "__fish_seen_subcommand_from send" -l no-progress -d 'never show a progress bar'
complete -c bluearrow -n "__fish_seen_subcommand_from send" -l at -x -d 'send later: hold in the outbox until TIME'
complete -c bluearrow -n "__fish_seen_subcommand_from config; and not __fish_seen_subcommand_from check show list init" -a 'check show list init'
complete -c bluearrow -n "__fish_seen_subcommand_from oauth2; and not __fish_seen_subcommand_from authorize" -a authorize -d 'get and store a refresh token'
complete -c bluearrow -n "__fish_seen_subcommand_from oauth2" -l device -d 'use the device flow'
complete -c bluearrow -n "__fish_seen_subcommand_from oauth2" -l print -d 'print the refresh token instead of storing it'
complete -c bluearrow -n "__fish_seen_subcommand_from oauth2" -l timeout -x -d 'seconds to wait for the authorization'
# account keys as options (msmtp's names): send, sendmail, config init
set -l k "__fish_seen_subcommand_from send sendmail init"
for o in host port tls-trust-file user passwordeval domain timeout logfile
    complete -c bluearrow -n $k -l $o -x -d 'account key'
end
complete -c bluearrow -n $k -l protocol -x -a 'smtp lmtp' -d 'account key'
complete -c bluearrow -n $k -l delivery -x -a 'relay mx' -d 'account key: relay or direct to the MX'
for o in tls tls-starttls tls-certcheck auth
    complete -c bluearrow -n $k -l $o -d 'account key (on|off)'
end

# the sendmail personality (bluearrow sendmail, bluearrow-sendmail)
for cmd in bluearrow bluearrow-sendmail
    set -l s "__fish_seen_subcommand_from sendmail"
    test $cmd = bluearrow-sendmail; and set s true
    complete -c $cmd -n $s -s t -d 'recipients from To, Cc, Bcc too'
    complete -c $cmd -n $s -s i -d 'a lone dot line is data'
    complete -c $cmd -n $s -o oi -d 'a lone dot line is data'
    complete -c $cmd -n $s -s f -x -d 'envelope sender'
    complete -c $cmd -n $s -s r -x -d 'envelope sender'
    complete -c $cmd -n $s -s F -x -d 'full name for a generated From'
    complete -c $cmd -n $s -s C -r -F -d 'configuration file'
    complete -c $cmd -n $s -s a -x -a '(__bluearrow_accounts)' -d 'account'
    complete -c $cmd -n $s -s N -x -a 'never success failure delay success,failure failure,delay success,failure,delay' -d 'DSN notify'
    complete -c $cmd -n $s -s R -x -a 'full hdrs' -d 'DSN return'
    complete -c $cmd -n $s -s V -x -d 'DSN envelope id'
    complete -c $cmd -n $s -s v -d 'show the SMTP dialogue'
    complete -c $cmd -n $s -s d -d 'debug: show the SMTP dialogue'
    complete -c $cmd -n $s -o bm -d 'deliver (default)'
    complete -c $cmd -n $s -o bp -d 'list the outbox'
    complete -c $cmd -n $s -s q -d 'send the due queued messages'
    complete -c $cmd -n $s -o qI -x -a '(__bluearrow_outbox_ids)' -d 'send one queued message'
    complete -c $cmd -n $s -o odi -d 'deliver now (default)'
    complete -c $cmd -n $s -o odb -d 'queue, then deliver in the background'
    complete -c $cmd -n $s -o odq -d 'queue only'
    complete -c $cmd -n $s -l read-envelope-from -d 'envelope sender from the From field'
    complete -c $cmd -n $s -l pretend -d 'show what would be sent; connect to nothing'
    complete -c $cmd -n $s -l dry-run -d 'show what would be sent; connect to nothing'
    complete -c $cmd -n $s -l progress -d 'show a progress bar'
    complete -c $cmd -n $s -l no-progress -d 'never show a progress bar'
end

# the outbox
function __bluearrow_outbox_ids
    bluearrow outbox list 2>/dev/null | sed -n 's/^\([0-9][^ ]*\)  age .*/\1/p'
end
set -l o "__fish_seen_subcommand_from outbox"
complete -c bluearrow -n "$o; and not __fish_seen_subcommand_from list show flush retry rm" -a 'list show flush retry rm'
complete -c bluearrow -n "$o; and __fish_seen_subcommand_from show flush retry rm" -x -a '(__bluearrow_outbox_ids)'
complete -c bluearrow -n "$o; and __fish_seen_subcommand_from list" -l json -d 'list as JSON'
complete -c bluearrow -n $o -s C -l file -r -F -d 'configuration file'
complete -c bluearrow -n "$o; and __fish_seen_subcommand_from flush" -s a -l account -x -a '(__bluearrow_accounts)' -d 'account'

# bluearrow-tui
complete -c bluearrow-tui -s C -r -F -d 'configuration file (accounts)'
complete -c bluearrow-tui -s F -r -F -d 'the TUI settings file'
complete -c bluearrow-tui -l drafts -d 'start in the drafts list'
complete -c bluearrow-tui -l version -d 'print the version'
complete -c bluearrow-tui -l help -d 'print a usage summary'
