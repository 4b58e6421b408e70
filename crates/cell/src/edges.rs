//! Edge numbering of a cell (DARTS; paper §3.1).
//!
//! Block `i` of a cell has `2 + i` inputs: 0 = H^{l-2}, 1 = H^{l-1}, `2 + k` = block `k`.
//! Its edges are numbered consecutively from `edge_offset(i)`, so with B = 5 blocks the
//! offsets are 0, 2, 5, 9, 14 and there are 20 edges: α has one row per edge.

/// Number of inputs of block `block` (0-based): H^{l-2}, H^{l-1} and every earlier block.
pub fn block_inputs(block: usize) -> usize {
    2 + block
}

/// Index of the first edge of block `block`: `sum_{j < block} (2 + j)`.
pub fn edge_offset(block: usize) -> usize {
    2 * block + block * block.saturating_sub(1) / 2
}

/// Index of the edge from input `input` (DARTS numbering) into block `block`.
///
/// Panics if `input` is not a predecessor of `block`: callers validate inputs first.
pub fn edge_index(block: usize, input: usize) -> usize {
    assert!(input < block_inputs(block), "input {input} is not a predecessor of block {block}");
    edge_offset(block) + input
}

/// Number of edges (rows of α) of a cell with `blocks` blocks.
pub fn num_edges(blocks: usize) -> usize {
    edge_offset(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn darts_numbering_for_five_blocks() {
        let offsets: Vec<usize> = (0..5).map(edge_offset).collect();
        assert_eq!(offsets, [0, 2, 5, 9, 14]);
        assert_eq!(num_edges(5), 20);
        assert_eq!(num_edges(1), 2);
        assert_eq!(edge_index(4, 5), 19);
        assert_eq!(edge_index(2, 3), 8);
    }

    #[test]
    #[should_panic(expected = "not a predecessor")]
    fn an_input_after_the_block_panics() {
        edge_index(1, 3);
    }
}
