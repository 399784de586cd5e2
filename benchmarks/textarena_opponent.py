"""The random TextArena opponent, measured per two-player game (issue 40): a random policy (the
same rule, on its own view of the game) plays it, and the table says how often each side made
an invalid move and how often the policy won. Where either side's random moves are invalid in
most games (the policy moves first: where its moves are invalid, the opponent's would be too),
the rule is no legal player for that game: it leaves README's "two players against
`opponent='random'`" row (a Python opponent function still plays it).

    python -u benchmarks/textarena_opponent.py                 # every game of README's row, 8 games each
    python -u benchmarks/textarena_opponent.py --games Nim,TicTacToe --episodes 4
"""

from __future__ import annotations

import argparse
import signal

from gym_textgen.tasks.arena import Game, random_opponent

#: README's two-player row (TextArena 0.7.4), ids without "-v0"
TWO_PLAYER = (
    "Alquerque Battleship Breakthrough Briscola Chopsticks ColonelBlotto ConnectFour Crusade "
    "GameOfPureStrategy GermanWhist Golf HighSociety IndianPoker IteratedMatchingPennies "
    "IteratedPrisonersDilemma IteratedRockPaperScissors IteratedTwoThirdsAverage "
    "IteratedUltimatumGame KuhnPoker LiarsDice LinesOfAction MemoryGame NewRecruit Nim Othello "
    "PigDice Poker SantoriniBaseFixed SimpleBlindAuction SimpleNegotiation SimpleTak Snake "
    "Stratego Surround Tak TicTacToe TruthAndDeception TwoDollar UltimateTicTacToe WildTicTacToe"
).split()


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout


def play(game_id: str, seed: int, max_moves: int = 200) -> tuple[float, bool, bool]:
    """One game of a random policy against the random opponent: (the policy's reward, whether
    the policy and whether the opponent made an invalid move)."""
    game = Game(f"{game_id}-v0", {}, "random")
    env, _ = game.start(seed)
    reward = 0.0
    for _ in range(max_moves):
        move = random_opponent(game.seen_by_policy(env, game_only=True) + f"\n#{seed}")
        done, _, reward = game.move(env, move)
        if done:
            break
    info = getattr(env.state, "game_info", {}) or {}
    invalid = [bool((info.get(p) or {}).get("invalid_move")) for p in (0, 1)]
    return reward, invalid[0], invalid[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--games", default=",".join(TWO_PLAYER))
    p.add_argument("--episodes", type=int, default=8)
    args = p.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    print("| game | policy wins | policy invalid | opponent invalid |")
    print("| --- | --- | --- | --- |")
    dropped = []
    for game_id in args.games.split(","):
        results, why = [], ""
        for seed in range(args.episodes):
            signal.alarm(30)
            try:
                results.append(play(game_id, seed))
            except _Timeout:
                why = "a game took over 30 s"
            except Exception as e:  # a game's own failure: reported, not fatal
                why = f"{type(e).__name__}: {str(e)[:80]}"
            finally:
                signal.alarm(0)
            if why:
                break
        if why:
            print(f"| {game_id} | {why} | | |")
            dropped.append(game_id)
            continue
        n = len(results)
        wins = sum(r > 0 for r, _, _ in results)
        mine = sum(i for _, i, _ in results)
        theirs = sum(i for _, _, i in results)
        print(f"| {game_id} | {wins}/{n} | {mine}/{n} | {theirs}/{n} |", flush=True)
        if max(mine, theirs) > n / 2:
            dropped.append(game_id)
    print(f"\nno legal random player (invalid moves in most games, or the game fails): "
          f"{', '.join(dropped) or 'none'}")  # fmt: skip


if __name__ == "__main__":
    main()
