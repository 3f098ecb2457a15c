"""Held-out benchmark queries, written independently of ranking-weight tuning.

These queries target ``HELDOUT_CORPORA`` (see ``corpora.py``) and use the same format as
``QUERIES`` in ``queries.py``. They were written from reading the sources only, before any
search results were looked at, and must not be used to tune ranking weights.
"""

from __future__ import annotations

from .queries import Query, _q

# fmt: off
HELDOUT_QUERIES: tuple[Query, ...] = (
    # ---------------------------------------------------------------- commander (JavaScript)
    _q("commander", "suggest the closest valid command when the user makes a typo", "plain",
       ("lib/suggestSimilar.js", "suggestSimilar"), ("lib/command.js", "Command.unknownCommand")),
    _q("commander", "pull the single-dash and double-dash names out of a definition like "
       "'-p, --port <number>'", "plain",
       ("lib/option.js", "splitOptionFlags")),
    _q("commander", "turn --dry-run into a dryRun key on the options object", "plain",
       ("lib/option.js", "camelcase"), ("lib/option.js", "Option.attributeName")),
    _q("commander", "fall back to an environment variable when the option isn't given on the "
       "command line", "plain",
       ("lib/command.js", "Command._parseOptionsEnv"), ("lib/option.js", "Option.env")),
    _q("commander", "setting one option automatically fills in values for other options", "plain",
       ("lib/command.js", "Command._parseOptionsImplied"), ("lib/option.js", "Option.implies")),
    _q("commander", "error out when two options that can't be combined are both given", "plain",
       ("lib/command.js", "Command._checkForConflictingLocalOptions"),
       ("lib/command.js", "Command._conflictingOption")),
    _q("commander", "run a subcommand that lives in its own script file as a child process",
       "plain", ("lib/command.js", "Command._executeSubCommand")),
    _q("commander", "child process started with --inspect should use a different debugger port",
       "plain", ("lib/command.js", "incrementNodeInspectorPort")),
    _q("commander", "break long help descriptions into lines that fit the terminal width", "plain",
       ("lib/help.js", "Help.wrap")),
    _q("commander", "assemble the full help text with usage, arguments, options and commands "
       "sections", "plain",
       ("lib/help.js", "Help.formatHelp"), ("lib/command.js", "Command.helpInformation")),
    _q("commander", "throw a catchable error instead of exiting the process, e.g. in tests",
       "plain", ("lib/command.js", "Command.exitOverride"), ("lib/command.js", "Command._exit")),
    _q("commander", "figure out where the user's own arguments begin in process.argv, including "
       "electron", "plain",
       ("lib/command.js", "Command._prepareUserArgs")),
    _q("commander", "error to throw from my custom value parser to reject bad input", "plain",
       ("lib/error.js", "InvalidArgumentError")),
    _q("commander", "missing mandatory options", "partial",
       ("lib/command.js", "Command._checkForMissingMandatoryOptions"),
       ("lib/command.js", "Command.missingMandatoryOptionValue")),
    _q("commander", "humanReadableArgName", "symbol", ("lib/argument.js", "humanReadableArgName")),
    # ---------------------------------------------------------------- itsdangerous (Python)
    _q("itsdangerous", "base64 without trailing equals signs so it can go in a link", "plain",
       ("src/itsdangerous/encoding.py", "base64_encode")),
    _q("itsdangerous", "disable signing so the signature is just empty", "plain",
       ("src/itsdangerous/signer.py", "NoneAlgorithm")),
    _q("itsdangerous", "how the salt is mixed with the secret to produce the real signing key",
       "plain", ("src/itsdangerous/signer.py", "Signer.derive_key")),
    _q("itsdangerous", "still accept tokens signed with an older secret after switching to a new "
       "one", "plain",
       ("src/itsdangerous/signer.py", "Signer.verify_signature")),
    _q("itsdangerous", "refuse a separator that could also show up inside the encoded signature",
       "plain", ("src/itsdangerous/signer.py", "Signer.__init__")),
    _q("itsdangerous", "reject tokens older than a given number of seconds", "plain",
       ("src/itsdangerous/timed.py", "TimestampSigner.unsign"),
       ("src/itsdangerous/timed.py", "TimedSerializer.loads")),
    _q("itsdangerous", "attach the current time to a value before signing it", "plain",
       ("src/itsdangerous/timed.py", "TimestampSigner.sign")),
    _q("itsdangerous", "exception for a token that has outlived its allowed age", "plain",
       ("src/itsdangerous/exc.py", "SignatureExpired")),
    _q("itsdangerous", "shrink the payload with compression only when that actually makes it "
       "shorter", "plain",
       ("src/itsdangerous/url_safe.py", "URLSafeSerializerMixin.dump_payload")),
    _q("itsdangerous", "peek at what's inside a token without trusting its signature, for "
       "debugging", "plain",
       ("src/itsdangerous/serializer.py", "Serializer.loads_unsafe"),
       ("src/itsdangerous/serializer.py", "Serializer._loads_unsafe_impl")),
    _q("itsdangerous", "try other signer configurations if the default one fails to verify",
       "plain",
       ("src/itsdangerous/serializer.py", "Serializer.iter_unsigners"),
       ("src/itsdangerous/serializer.py", "Serializer.loads")),
    _q("itsdangerous", "does the data serializer return a str instead of bytes", "plain",
       ("src/itsdangerous/serializer.py", "is_text_serializer")),
    _q("itsdangerous", "json dumps with no spaces after commas and colons", "plain",
       ("src/itsdangerous/_json.py", "_CompactJSON.dumps"),
       ("src/itsdangerous/_json.py", "_CompactJSON")),
    _q("itsdangerous", "make signer salt", "partial",
       ("src/itsdangerous/serializer.py", "Serializer.make_signer")),
    _q("itsdangerous", "want_bytes", "symbol", ("src/itsdangerous/encoding.py", "want_bytes")),
)
# fmt: on
