# bash completion for bluearrow                                    -*- shell-script -*-
# Install as /usr/share/bash-completion/completions/bluearrow (and link it as
# bluearrow-sendmail for the sendmail personality).

# Account names of the configuration (-C FILE on the line, else the default search).
_bluearrow_accounts()
{
	local i file=()
	for ((i = 1; i < ${#words[@]} - 1; i++)); do
		case ${words[i]} in
		-C | --file) file=(-C "${words[i + 1]}") ;;
		-C?*) file=(-C "${words[i]#-C}") ;;
		esac
	done
	bluearrow config list "${file[@]}" 2>/dev/null
}

# account keys as options (msmtp's names), for send and sendmail
_bluearrow_account_opts="--host --port --tls --tls-starttls --tls-trust-file --tls-certcheck --auth
	--user --passwordeval --domain --timeout --protocol --logfile --delivery"
_bluearrow_sendmail_opts="-t -i -oi -f -r -F -C -a -N -R -V -v -d -bm -bp -q -qI --read-envelope-from --
	--pretend --dry-run --progress --no-progress
	-oem -odi -odb -odq -B8BITMIME -B7BIT --help $_bluearrow_account_opts"

# The IDs of the queued messages (the first word of each entry of `outbox list`).
_bluearrow_outbox_ids()
{
	bluearrow outbox list "$@" 2>/dev/null | sed -n 's/^\([0-9][^ ]*\)  age .*/\1/p'
}

# Completes the arguments of the sendmail personality; $1 = index of the first argument.
_bluearrow_sendmail_args()
{
	case $prev in
	-C | --file) _filedir; return ;;
	-a | --account) COMPREPLY=($(compgen -W "$(_bluearrow_accounts)" -- "$cur")); return ;;
	-N) COMPREPLY=($(compgen -W "never success failure delay success,failure
		failure,delay success,failure,delay" -- "$cur")); return ;;
	-R) COMPREPLY=($(compgen -W "full hdrs" -- "$cur")); return ;;
	-f | -r | -F | -V) return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$_bluearrow_sendmail_opts" -- "$cur"))
	fi
}

_bluearrow()
{
	local cur prev words cword
	_init_completion || return

	local commands="help version compose send check config sendmail mx outbox oauth2"
	if [[ $cword -eq 1 ]]; then
		COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
		return
	fi
	local compose_opts="--from --to --cc --bcc --reply-to --subject --body --html --attach
		--attach-type --attach-name --header --in-reply-to --references --crlf --8bit --help"
	case ${words[1]} in
	help)
		[[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		;;
	compose | send)
		case $prev in
		--body | --html | --attach | -C | --file)
			_filedir
			return
			;;
		-a | --account)
			COMPREPLY=($(compgen -W "$(_bluearrow_accounts)" -- "$cur"))
			return
			;;
		--attach-type)
			COMPREPLY=($(compgen -W "$(sed -n 's/^\([a-z][^[:space:]#]*\/[^[:space:]]*\).*/\1/p' \
				/etc/mime.types 2>/dev/null)" -- "$cur"))
			return
			;;
		--from | --to | --cc | --bcc | --reply-to | --subject | --attach-name | --header | --in-reply-to | \
			--references | --at)
			return
			;;
		esac
		local extra=""
		if [[ ${words[1]} == send ]]; then
			# an existing message to submit: a file name (or - for standard input)
			[[ $cur != -* ]] && { _filedir; return; }
			extra="-C --file -a --account -v --verbose --dry-run --progress --no-progress --at $_bluearrow_account_opts"
		fi
		COMPREPLY=($(compgen -W "$compose_opts $extra" -- "$cur"))
		;;
	check)
		case $prev in
		-C | --file) _filedir; return ;;
		-a | --account) COMPREPLY=($(compgen -W "$(_bluearrow_accounts)" -- "$cur")); return ;;
		esac
		COMPREPLY=($(compgen -W "-C --file -a --account -v --verbose --help" -- "$cur"))
		;;
	mx)
		case $prev in
		-C | --file) _filedir; return ;;
		-a | --account) COMPREPLY=($(compgen -W "$(_bluearrow_accounts)" -- "$cur")); return ;;
		esac
		[[ $cur == -* ]] && COMPREPLY=($(compgen -W "-C --file -a --account --probe -v --verbose --help" -- "$cur"))
		;;
	config)
		if [[ $cword -eq 2 ]]; then
			COMPREPLY=($(compgen -W "check show list init" -- "$cur"))
			return
		fi
		case $prev in
		-C | --file) _filedir; return ;;
		-a | --account) COMPREPLY=($(compgen -W "$(_bluearrow_accounts)" -- "$cur")); return ;;
		esac
		local o="-C --file"
		[[ ${words[2]} == show ]] && o="$o -a --account -f --from"
		[[ ${words[2]} == init ]] && o="$o -a --account -f --from $_bluearrow_account_opts"
		COMPREPLY=($(compgen -W "$o" -- "$cur"))
		;;
	sendmail)
		_bluearrow_sendmail_args
		;;
	outbox)
		if [[ $cword -eq 2 ]]; then
			COMPREPLY=($(compgen -W "list show flush retry rm" -- "$cur"))
			return
		fi
		case $prev in
		-C | --file) _filedir; return ;;
		-a | --account) COMPREPLY=($(compgen -W "$(_bluearrow_accounts)" -- "$cur")); return ;;
		esac
		if [[ $cur == -* ]]; then
			local o="-C --file --help"
			[[ ${words[2]} == list ]] && o="$o --json"
			[[ ${words[2]} == flush ]] && o="$o -a --account -v --verbose"
			COMPREPLY=($(compgen -W "$o" -- "$cur"))
		elif [[ ${words[2]} == @(show|flush|retry|rm) ]]; then
			COMPREPLY=($(compgen -W "$(_bluearrow_outbox_ids)" -- "$cur"))
		fi
		;;
	oauth2)
		if [[ $cword -eq 2 ]]; then
			COMPREPLY=($(compgen -W "authorize" -- "$cur"))
			return
		fi
		case $prev in
		-C | --file) _filedir; return ;;
		-a | --account) COMPREPLY=($(compgen -W "$(_bluearrow_accounts)" -- "$cur")); return ;;
		--timeout) return ;;
		esac
		COMPREPLY=($(compgen -W "-C --file -a --account --device --print --timeout --help" -- "$cur"))
		;;
	esac
} &&
	complete -F _bluearrow bluearrow

_bluearrow_sendmail()
{
	local cur prev words cword
	_init_completion || return
	_bluearrow_sendmail_args
} &&
	complete -F _bluearrow_sendmail bluearrow-sendmail

_bluearrow_tui()
{
	local cur prev words cword
	_init_completion || return
	case $prev in
	-C | -F)
		_filedir
		return
		;;
	esac
	COMPREPLY=($(compgen -W "-C -F --drafts --version --help" -- "$cur"))
} &&
	complete -F _bluearrow_tui bluearrow-tui
