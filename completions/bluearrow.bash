# bash completion for bluearrow                                    -*- shell-script -*-
# Install as /usr/share/bash-completion/completions/bluearrow

_bluearrow()
{
	local cur prev words cword
	_init_completion || return

	local commands="help version compose config"
	if [[ $cword -eq 1 ]]; then
		COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
		return
	fi
	case ${words[1]} in
	help)
		[[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		;;
	config)
		case $prev in
		-C | --file) _filedir; return ;;
		-a | --account) return ;;
		esac
		if [[ $cword -eq 2 ]]; then
			COMPREPLY=($(compgen -W "check show list" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "-C --file -a --account" -- "$cur"))
		fi
		;;
	compose)
		case $prev in
		--body | --html | --attach)
			_filedir
			return
			;;
		--attach-type)
			COMPREPLY=($(compgen -W "$(sed -n 's/^\([a-z][^[:space:]#]*\/[^[:space:]]*\).*/\1/p' \
				/etc/mime.types 2>/dev/null)" -- "$cur"))
			return
			;;
		--from | --to | --cc | --bcc | --subject | --attach-name | --header | --in-reply-to | \
			--references)
			return
			;;
		esac
		COMPREPLY=($(compgen -W "--from --to --cc --bcc --subject --body --html --attach
			--attach-type --attach-name --header --in-reply-to --references --crlf --8bit
			--help" -- "$cur"))
		;;
	esac
} &&
	complete -F _bluearrow bluearrow
