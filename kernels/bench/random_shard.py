"""kernels/bench/random_shard.py — token shards of uniformly random ids, so a
benchmark can run `moonspeed run` at a real vocabulary (128256) on a machine
without the tokenizer or a corpus. The layout is engine/data/shard.c's:
a 64-byte header (magic "MSTOKENS", version 1, header size 64, vocabulary,
token count at byte 24, tokenizer id at byte 32), then uint32 ids.

    python3 kernels/bench/random_shard.py OUT.bin VOCAB TOKENS [SEED]
"""
import array
import random
import struct
import sys


def main():
    path, vocab, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    head = bytearray(64)
    head[0:8] = b"MSTOKENS"
    struct.pack_into("<III", head, 8, 1, 64, vocab)
    struct.pack_into("<Q", head, 24, n)
    head[32:37] = b"bytes"  # the id the recipe's data.tokenizer ("bytes") asks for
    rng = random.Random(seed)
    ids = array.array("I", (rng.randrange(vocab) for _ in range(n)))
    if sys.byteorder != "little":
        ids.byteswap()
    with open(path, "wb") as f:
        f.write(head)
        f.write(ids.tobytes())


if __name__ == "__main__":
    main()
