# bash completion for postbote(8)                           -*- shell-script -*-
#
# Install as "postbote" in bash-completion's completions directory
# (pkg-config --variable=completionsdir bash-completion), or source it.
#
# What is completed:
#   - the options of postbote(8): -C -f -r -F -t -i -oi -v -N -R -V -X
#     -S --serverinfo --pretend -bm -bs -bv -bp -bi -q --account
#     --oauth2-authorize[=browser|device] --oauth2-token
#     --no-queue --help --version --
#     (the sendmail options postbote accepts and ignores, such as -oem,
#     -B8BITMIME or -h 17, are understood when they are on the line, so
#     that their arguments are skipped, but are not offered);
#   - -C FILE and -X LOGFILE: file names;
#   - -N: never, or a comma-separated list of success, failure, delay;
#   - -R: full, hdrs;
#   - --account NAME (also --account=NAME): the accounts defined in the
#     configuration file postbote would read: the last -C FILE given before
#     the word being completed, else $XDG_CONFIG_HOME/postbote/config (or
#     ~/.config/postbote/config when XDG_CONFIG_HOME is unset) if it
#     exists, else /etc/postbote.conf. Every "account NAME" and
#     "account NAME : PARENT..." line gives NAME, so "account default :
#     work" gives "default"; settings before any "defaults" or "account"
#     line form the account "default" too, as in postbote;
#   - recipients: local user names (bare names such as root are valid
#     recipients: postbote completes them with the configured maildomain
#     or maps them through its aliases file). As in postbote, options end
#     at the first recipient or at "--"; nothing but recipients is
#     offered after that.
#
# Works with the bash-completion package (recommended) and without it.

# _postbote_config_file [-C FILE]: print the file postbote would read.
_postbote_config_file()
{
    local file=$1 user=
    if [[ -n $file ]]; then
        # The shell has not expanded a tilde in a word on the line yet.
        # shellcheck disable=SC2088 # a literal tilde is what is matched
        case $file in
            '~') file=$HOME ;;
            '~/'*) file=$HOME/${file#'~/'} ;;
        esac
        printf '%s\n' "$file"
        return
    fi
    if [[ -n ${XDG_CONFIG_HOME-} ]]; then
        user=$XDG_CONFIG_HOME/postbote/config
    elif [[ -n ${HOME-} ]]; then
        user=$HOME/.config/postbote/config
    fi
    if [[ -n $user && -e $user ]]; then
        printf '%s\n' "$user"
    else
        printf '%s\n' /etc/postbote.conf
    fi
}

# _postbote_accounts FILE: print the names of the accounts FILE defines,
# one per line, parsed as postbote.conf(5) says.
_postbote_accounts()
{
    local line keyword arg name sectioned='' implicit=''
    local ws=$' \t\r\f\v' bs=\\ q='"'
    [[ -r $1 && ! -d $1 ]] || return 0
    while IFS= read -r line || [[ -n $line ]]; do
        # Trim blanks (a CRLF file leaves a CR at the end).
        line=${line#"${line%%[!"$ws"]*}"}
        line=${line%"${line##*[!"$ws"]}"}
        [[ -z $line || $line == '#'* ]] && continue
        keyword=${line%%["$ws"]*}
        arg=${line:${#keyword}}
        arg=${arg#"${arg%%[!"$ws"]*}"}
        case $keyword in
            defaults)
                sectioned=1
                ;;
            account)
                sectioned=1
                # A quoted argument: \" and \\ stand for " and \.
                if [[ $arg == '"'*'"' && ${#arg} -ge 2 ]]; then
                    arg=${arg:1:${#arg}-2}
                    arg=${arg//"$bs$bs"/$'\1'}
                    arg=${arg//"$bs$q"/$q}
                    arg=${arg//$'\1'/$bs}
                fi
                # "account NAME : PARENT, ...": NAME only.
                name=${arg%%:*}
                name=${name#"${name%%[!"$ws"]*}"}
                name=${name%"${name##*[!"$ws"]}"}
                [[ -n $name ]] && printf '%s\n' "$name"
                ;;
            *)
                # msmtp's legacy: settings before any section form the
                # account "default".
                if [[ -z $sectioned && -z $implicit ]]; then
                    implicit=1
                    printf '%s\n' default
                fi
                ;;
        esac
    done <"$1"
}

# _postbote_reply_words PREFIX WORD...: COMPREPLY gets PREFIX+WORD for
# every WORD that starts with the part of $cur after PREFIX.
_postbote_reply_words()
{
    local prefix=$1 w q
    shift
    for w in "$@"; do
        if [[ $w == "${cur:${#prefix}}"* ]]; then
            printf -v q '%q' "$w"
            COMPREPLY+=("$prefix$q")
        fi
    done
}

# _postbote_files PREFIX: file names for $cur without PREFIX (an attached
# option argument such as -C~/.msmtprc).
_postbote_files()
{
    local prefix=$1 f
    local -a files
    if [[ -z $prefix ]] && declare -F _filedir >/dev/null; then
        _filedir
        return
    fi
    compopt -o filenames 2>/dev/null
    mapfile -t files < <(compgen -f -- "${cur:${#prefix}}")
    for f in "${files[@]}"; do
        COMPREPLY+=("$prefix$f")
    done
}

# _postbote_dsn PREFIX: -N's argument; a comma-separated list continues.
_postbote_dsn()
{
    local prefix=$1 arg=${cur:${#1}} done_part='' c
    local -a left=()
    if [[ $arg == *,* ]]; then
        done_part=${arg%,*},
        for c in success failure delay; do
            [[ ,$done_part == *,$c,* ]] || left+=("$c")
        done
        [[ ,$done_part == *,never,* ]] && left=()
    else
        left=(never success failure delay)
    fi
    _postbote_reply_words "$prefix$done_part" "${left[@]}"
}

_postbote()
{
    local cur prev words cword split=false
    if declare -F _init_completion >/dev/null; then
        _init_completion -s || return
    else
        # Without bash-completion: words as bash split them, where "=" is
        # a word of its own.
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        if [[ $cur == = ]]; then
            cur=
            split=true
        elif [[ $prev == = && $cword -ge 2 ]]; then
            prev=${COMP_WORDS[COMP_CWORD - 2]}
            split=true
        fi
    fi
    COMPREPLY=()

    # Walk the words before the cursor as getopt does: find the -C file,
    # whether the current word is an option's argument, and whether the
    # options have ended.
    local conf='' i w j letter rest want='' ended=''
    local takes_arg='ABCFLNORVXbfhor'
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if [[ $w == = ]]; then
            # Only without bash-completion: "--opt" "=" "value".
            continue
        fi
        case $w in
            --)
                ended=1
                break
                ;;
            --*=*) ;;
            --attach | --subject)
                if ((i + 1 == cword)); then
                    if [[ $w == --attach ]]; then want=-X; else want=none; fi
                fi
                ((i++))
                ;;
            --?*)
                if [[ ${#w} -ge 3 && --account == "$w"* ]]; then
                    if ((i + 1 == cword)); then
                        want=account
                    elif [[ ${words[i + 1]} == = ]]; then
                        # "--account" "=" "value" (no bash-completion)
                        ((i + 2 == cword)) && want=account
                        ((i += 2))
                    else
                        ((i++))
                    fi
                fi
                ;;
            -?*)
                for ((j = 1; j < ${#w}; j++)); do
                    letter=${w:j:1}
                    rest=${w:j+1}
                    if [[ $letter == q ]]; then
                        break # -q takes an optional attached argument
                    fi
                    if [[ $takes_arg == *"$letter"* ]]; then
                        if [[ -z $rest ]]; then
                            if ((i + 1 == cword)); then
                                want=-$letter
                            else
                                rest=${words[i + 1]}
                            fi
                            ((i++))
                        fi
                        [[ $letter == C && -n $rest ]] && conf=$rest
                        break
                    fi
                done
                ;;
            *)
                # The first recipient ends the options.
                ended=1
                break
                ;;
        esac
    done

    local accounts
    if [[ -z $ended && -z $want ]]; then
        # An option's argument in the same word.
        case $cur in
            --*=*)
                if [[ ${cur%%=*} == --a* && --account == "${cur%%=*}"* ]]; then
                    want=account
                    cur=${cur#*=}
                fi
                ;;
            --*) ;;
            -*)
                # -tCfile: find the first option that takes an argument.
                for ((j = 1; j < ${#cur}; j++)); do
                    letter=${cur:j:1}
                    [[ $letter == q ]] && break
                    if [[ $takes_arg == *"$letter"* ]]; then
                        if ((j + 1 < ${#cur})); then
                            case $letter in
                                C | X | A | N | R)
                                    want=attached-$letter
                                    rest=${cur:0:j+1}
                                    ;;
                                b | o) ;; # -bm, -oi: offered as options
                                *) want=none ;;
                            esac
                        fi
                        break
                    fi
                done
                ;;
        esac
        if [[ -z $want && $split == true && $prev == --a* &&
            ${#prev} -ge 3 && --account == "$prev"* ]]; then
            want=account
        fi
    fi

    case $want in
        account)
            mapfile -t accounts < <(_postbote_accounts "$(_postbote_config_file "$conf")")
            _postbote_reply_words "" "${accounts[@]}"
            return
            ;;
        -C | -X | -A) _postbote_files "" ; return ;;
        attached-[CXA]) _postbote_files "$rest" ; return ;;
        -N) _postbote_dsn "" ; return ;;
        attached-N) _postbote_dsn "$rest" ; return ;;
        -R) _postbote_reply_words "" full hdrs ; return ;;
        attached-R) _postbote_reply_words "$rest" full hdrs ; return ;;
        -b) _postbote_reply_words "" m s v p i ; return ;;
        -o) _postbote_reply_words "" i ; return ;;
        ?*) return ;; # a sender, name, envid, ...: nothing to offer
    esac

    if [[ -z $ended && $cur == -* ]]; then
        _postbote_reply_words "" -C --account -f -r -F -t -i -oi -v -N -R \
            -V -X -S --serverinfo --pretend --subject --attach -bm -bs -bv -bp \
            -bi -q \
            --no-queue --oauth2-authorize --oauth2-token --help --version --
        return
    fi

    # A recipient: a local user name (or anything the user types).
    mapfile -t COMPREPLY < <(compgen -u -- "$cur")
} &&
    complete -F _postbote postbote

# ex: filetype=sh
