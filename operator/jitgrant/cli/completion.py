"""`jitgrant completion bash|zsh`: a completion script generated from the parser itself.

Commands and each command's flags come from argparse, so they cannot drift from the CLI; request
names for get/approve/deny/revoke are asked of the cluster (`jitgrant list -o jsonpath`), honouring
a -n already typed on the line.
"""

from __future__ import annotations

import argparse
import shlex

NAMED_COMMANDS = ("get", "approve", "deny", "revoke")

_BASH = """\
# {prog} completion for bash; zsh: autoload -U +X bashcompinit && bashcompinit first.
_{func}() {{
  local cur cmd ns i names
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  cmd=""
  ns=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${{COMP_WORDS[i]}}" in
      -n|--namespace) ns="${{COMP_WORDS[i+1]}}" ;;
      -*) ;;
      *) [ -z "$cmd" ] && cmd="${{COMP_WORDS[i]}}" ;;
    esac
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "{commands}" -- "$cur"))
    return
  fi
  case "$cur" in
    -*)
      case "$cmd" in
{flag_cases}
      esac
      return ;;
  esac
  case "$cmd" in
    {named})
      names="$({prog} list ${{ns:+-n "$ns"}} -o 'jsonpath={{.items[*].metadata.name}}' 2>/dev/null)"
      COMPREPLY=($(compgen -W "$names" -- "$cur")) ;;
  esac
}}
complete -F _{func} {prog}
"""


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return sorted({option for action in parser._actions for option in action.option_strings})


def completion_script(parser: argparse.ArgumentParser, shell: str, *, prog: str = "jitgrant") -> str:
    """The script for `shell` (bash or zsh: zsh sources the bash one through bashcompinit)."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands: dict[str, argparse.ArgumentParser] = dict(subparsers.choices)
    cases = "\n".join(
        f"        {shlex.quote(name)}) COMPREPLY=($(compgen -W {shlex.quote(' '.join(_flags(sub)))} "
        '-- "$cur")) ;;'
        for name, sub in sorted(commands.items())
    )
    script = _BASH.format(
        prog=prog,
        func=prog.replace("-", "_"),
        commands=" ".join(sorted(commands)),
        flag_cases=cases,
        named="|".join(NAMED_COMMANDS),
    )
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script


def add_completion_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="source <(jitgrant completion bash)   # or put it in ~/.bashrc; zsh: completion zsh",
    )
    p.add_argument("shell", choices=["bash", "zsh"])
