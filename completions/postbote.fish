# fish completion for postbote(8). Install as "postbote.fish" in fish's
# vendor_completions.d (pkg-config --variable=completionsdir fish).
#
# What is completed (the same as the bash and zsh completions):
#   - the options of postbote(8) with descriptions; the sendmail options
#     postbote accepts and ignores (-oem, -B8BITMIME, -h 17, ...) are not
#     offered;
#   - -C FILE and -X LOGFILE: file names; -N: never, or a comma-separated
#     list of success, failure, delay; -R: full or hdrs;
#   - --account NAME (or --account=NAME): the accounts in the configuration
#     file postbote would read: the last -C FILE given before the cursor,
#     else $XDG_CONFIG_HOME/postbote/config (~/.config/postbote/config when
#     XDG_CONFIG_HOME is unset) if it exists, else /etc/postbote.conf.
#     "account NAME" and "account NAME : PARENT..." lines give NAME (so
#     "account default : work" gives "default"), and settings before any
#     "defaults" or "account" line form the account "default";
#   - recipients: local user names. Options end at the first recipient or
#     at "--", as in postbote.

# Scan the words before the cursor as postbote's getopt does. Prints
# "conf FILE" for the last -C, and "ended" once the options have ended.
function __postbote_scan
    set -l words (commandline -opc)
    set -e words[1]
    set -l takes_arg A B C F L N O R V X b f h o r
    set -l n (count $words)
    set -l i 1
    set -l conf
    while test $i -le $n
        set -l w $words[$i]
        if test "$w" = --
            echo ended
            break
        else if string match -q -- '--*=*' $w
            # --account=NAME and the like: one word
        else if string match -q -- '--?*' $w
            # --account NAME (getopt also takes an abbreviation: --acc)
            if test (string length -- $w) -ge 3; and string match -q -- "$w*" --account
                set i (math $i + 1)
            end
        else if string match -q -- '-?*' $w
            set -l letters (string split '' -- (string sub -s 2 -- $w))
            set -l j 1
            for letter in $letters
                set j (math $j + 1)
                test "$letter" = q; and break
                if contains -- $letter $takes_arg
                    set -l rest (string sub -s (math $j + 1) -- $w)
                    if test -z "$rest"
                        set i (math $i + 1)
                        set rest $words[$i]
                    end
                    if test "$letter" = C; and test -n "$rest"
                        set conf $rest
                    end
                    break
                end
            end
        else
            # The first recipient ends the options.
            echo ended
            break
        end
        set i (math $i + 1)
    end
    if test -n "$conf"
        echo conf
        echo $conf
    end
end

function __postbote_options_ended
    contains -- ended (__postbote_scan)
end

# The file postbote would read.
function __postbote_config_file
    set -l scan (__postbote_scan)
    set -l k (contains -i -- conf $scan)
    if test -n "$k"
        set -l file $scan[(math $k + 1)]
        # A word as typed: expand a leading ~.
        string replace -r -- '^~(?=/|$)' "$HOME" $file
        return
    end
    set -l user
    if set -q XDG_CONFIG_HOME; and test -n "$XDG_CONFIG_HOME"
        set user $XDG_CONFIG_HOME/postbote/config
    else if set -q HOME; and test -n "$HOME"
        set user $HOME/.config/postbote/config
    end
    if test -n "$user"; and test -e "$user"
        echo $user
    else
        echo /etc/postbote.conf
    end
end

# __postbote_account_names FILE: the accounts FILE defines.
function __postbote_account_names
    set -l file $argv[1]
    test -r "$file"; and not test -d "$file"; or return 0
    set -l sectioned
    set -l implicit
    while read -l line
        # Trim blanks (a CRLF file leaves a CR at the end).
        set line (string replace -r -- '^[ \t\r\f\v]+' '' $line)
        set line (string replace -r -- '[ \t\r\f\v]+$' '' $line)
        test -z "$line"; and continue
        string match -q -- '#*' $line; and continue
        set -l keyword (string replace -r -- '[ \t\r\f\v].*$' '' $line)
        set -l arg (string sub -s (math (string length -- $keyword) + 1) -- $line)
        set arg (string replace -r -- '^[ \t\r\f\v]+' '' "$arg")
        switch $keyword
            case defaults
                set sectioned 1
            case account
                set sectioned 1
                # A quoted argument: \" and \\ stand for " and \.
                if string match -q -r -- '^".*"$' "$arg"
                    set arg (string sub -s 2 -e -1 -- $arg)
                    set arg (string replace -a -r -- '\\\\(["\\\\])' '$1' $arg)
                end
                # "account NAME : PARENT, ...": NAME only.
                set -l name (string split -m 1 -- : "$arg")[1]
                set name (string trim -c \ \t\r\f\v -- "$name")
                test -n "$name"; and echo $name
            case '*'
                # Settings before any section form the account "default".
                if test -z "$sectioned"; and test -z "$implicit"
                    set implicit 1
                    echo default
                end
        end
    end <$file
end

function __postbote_accounts
    __postbote_account_names (__postbote_config_file)
end

# -N: never, or a comma-separated list that continues after a comma.
function __postbote_dsn
    set -l token (commandline -ct)
    set token (string replace -r -- '^-N' '' $token)
    if string match -q -- '*,*' $token
        set -l done (string replace -r -- ',[^,]*$' ',' $token)
        contains -- never (string split , -- $done); and return
        for c in success failure delay
            contains -- $c (string split , -- $done); or echo $done$c
        end
    else
        printf '%s\n' never success failure delay
    end
end

complete -c postbote -e
# Arguments are recipients, not files.
complete -c postbote -f

set -l opts_open 'not __postbote_options_ended'
complete -c postbote -n $opts_open -s C -r -F -d 'Read the configuration from FILE'
complete -c postbote -n $opts_open -l account -x -a '(__postbote_accounts)' -d 'Use the named account'
complete -c postbote -n $opts_open -s f -x -d 'Envelope sender address'
complete -c postbote -n $opts_open -s r -x -d 'Envelope sender address (as -f)'
complete -c postbote -n $opts_open -s F -x -d 'Full name for an added From field'
complete -c postbote -n $opts_open -s t -d 'Also take recipients from To, Cc and Bcc'
complete -c postbote -n $opts_open -s i -d 'A line with a single dot does not end the message'
complete -c postbote -n $opts_open -o oi -d 'A line with a single dot does not end the message'
complete -c postbote -n $opts_open -s v -d 'Show the SMTP dialogue on standard error'
complete -c postbote -n $opts_open -s N -x -a '(__postbote_dsn)' -d 'Delivery status notifications'
complete -c postbote -n $opts_open -s R -x -a 'full\t"Return the full message" hdrs\t"Return the headers only"' -d 'What a failure notice returns'
complete -c postbote -n $opts_open -s V -x -d 'Envelope identifier for notices'
complete -c postbote -n $opts_open -s X -r -F -d 'Append the SMTP dialogue to LOGFILE'
complete -c postbote -n $opts_open -s S -l serverinfo -d 'Show what the server offers; send nothing'
complete -c postbote -n $opts_open -l pretend -d 'Show what would be sent; do not connect'
complete -c postbote -n $opts_open -l oauth2-authorize -f -a 'browser device' -d 'Authorise the account with its OAuth2 provider'
complete -c postbote -n $opts_open -l oauth2-token -d 'Print a valid OAuth2 access token'
complete -c postbote -n $opts_open -l subject -x -d 'Compose a message with this subject'
complete -c postbote -n $opts_open -l attach -r -F -d 'Attach a file to a composed message'
complete -c postbote -n $opts_open -o bm -d 'Deliver mail (the default)'
complete -c postbote -n $opts_open -o bs -d 'Speak SMTP on standard input and output'
complete -c postbote -n $opts_open -o bv -d 'Verify the recipients'
complete -c postbote -n $opts_open -o bp -d 'List the mail queue'
complete -c postbote -n $opts_open -o bi -d 'Do nothing (newaliases)'
complete -c postbote -n $opts_open -s q -d 'Deliver every queued message now'
complete -c postbote -n $opts_open -l no-queue -d 'Do not queue: a temporary failure exits 75'
complete -c postbote -n $opts_open -l help -d 'Print a usage summary'
complete -c postbote -n $opts_open -l version -d 'Print the version'
# Recipients: local user names.
complete -c postbote -a '(__fish_complete_users)'
