"""Encoding: fixed-width bit packing, canonical Huffman coding, sparse formats
(relative index with filler zeros, CSR) and the ``.efz`` container."""

from edgefit.compress.encode.bits import pack_fixed, unpack_fixed
from edgefit.compress.encode.container import (
    ENCODINGS,
    FORMAT_VERSION,
    EfzFile,
    EncodedTensor,
    best_index_bits,
    decode_entry,
    encode_tensor,
    read_efz,
    write_efz,
)
from edgefit.compress.encode.huffman import (
    code_lengths,
    huffman_bits,
    huffman_decode,
    huffman_encode,
)
from edgefit.compress.encode.sparse import (
    CSR,
    RelativeIndex,
    csr_decode,
    csr_encode,
    relative_decode,
    relative_encode,
)

__all__ = [
    "CSR",
    "ENCODINGS",
    "FORMAT_VERSION",
    "EfzFile",
    "EncodedTensor",
    "RelativeIndex",
    "best_index_bits",
    "code_lengths",
    "csr_decode",
    "csr_encode",
    "decode_entry",
    "encode_tensor",
    "huffman_bits",
    "huffman_decode",
    "huffman_encode",
    "pack_fixed",
    "read_efz",
    "relative_decode",
    "relative_encode",
    "unpack_fixed",
    "write_efz",
]
