"""Which of TextArena's games run here, offline? Tries each base game id (`Name-v0`) through
`gym_textgen.tasks.arena.Game`: one player first; a game that refuses one player is tried
again with two against the random opponent. A game "runs" when it starts from a seed and
answers a first move (`[1]`); otherwise the reason is printed (missing nltk data, an API key,
a syntax error under this Python, ...). Prints a markdown summary for README (not CI).

    python benchmarks/textarena_games.py
"""

from __future__ import annotations

import signal

import textarena as ta

from gym_textgen.errors import TextGenValueError
from gym_textgen.tasks.arena import Game


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout


def try_game(game_id: str) -> tuple[str, str]:
    """("1" or "2" players, "") when the game runs, else ("", why)."""
    for opponent in (None, "random"):
        signal.alarm(20)
        try:
            game = Game(game_id, {}, opponent)
            env, _ = game.start(0)
            game.move(env, "[1]")
            return ("1" if opponent is None else "2"), ""
        except _Timeout:
            return "", "no answer in 20 s"
        except TextGenValueError as e:
            if opponent is None and "with 1 player" in str(e):
                continue
            return "", str(e).split(": ", 1)[-1][:100]
        except Exception as e:  # a game's own bug on its first move
            return "", f"{type(e).__name__}: {str(e)[:100]}"
        finally:
            signal.alarm(0)
    return "", "unreachable"


def main() -> None:
    signal.signal(signal.SIGALRM, _alarm)
    ids = sorted(k for k in ta.envs.registration.ENV_REGISTRY if k.count("-") == 1)
    runs: dict[str, list[str]] = {"1": [], "2": []}
    fails = []
    for game_id in ids:
        players, why = try_game(game_id)
        print(f"{game_id}: {'runs, ' + players + ' player(s)' if players else why}", flush=True)
        if players:
            runs[players].append(game_id.removesuffix("-v0"))
        else:
            fails.append((game_id.removesuffix("-v0"), why))
    print(f"\nTextArena {ta.__version__ if hasattr(ta, '__version__') else ''}: {len(ids)} games")
    print("\n| runs offline | games |\n| --- | --- |")
    print(f"| one player ({len(runs['1'])}) | {', '.join(runs['1'])} |")
    print(f"| two players, `opponent='random'` ({len(runs['2'])}) | {', '.join(runs['2'])} |")
    print(f"| does not run ({len(fails)}) | {', '.join(name for name, _ in fails)} |")


if __name__ == "__main__":
    main()
