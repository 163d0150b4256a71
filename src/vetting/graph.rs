//! Graph helpers shared by both formats: id canonicalisation and cycle detection.

/// The form under which two ids would be confused: trimmed, lowercase, and for numbers without
/// leading zeros. Two distinct ids with the same canonical form are ambiguous.
pub fn canonical_id(id: &str) -> String {
    let trimmed = id.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let digits = trimmed.trim_start_matches('0');
        if digits.is_empty() {
            "0".to_owned()
        } else {
            digits.to_owned()
        }
    } else {
        trimmed.to_lowercase()
    }
}

/// Indices of the nodes that are on a cycle or downstream of one (Kahn's algorithm leaves
/// exactly those), in ascending order. `edges` are `(from, to)` pairs of node indices.
pub fn nodes_in_cycles(node_count: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut in_degree = vec![0usize; node_count];
    let mut outgoing: Vec<Vec<usize>> = vec![Vec::new(); node_count];
    for &(from, to) in edges {
        if from < node_count && to < node_count {
            in_degree[to] += 1;
            outgoing[from].push(to);
        }
    }
    let mut ready: Vec<usize> = (0..node_count).filter(|&n| in_degree[n] == 0).collect();
    let mut visited = vec![false; node_count];
    while let Some(node) = ready.pop() {
        visited[node] = true;
        for &next in &outgoing[node] {
            in_degree[next] -= 1;
            if in_degree[next] == 0 {
                ready.push(next);
            }
        }
    }
    (0..node_count).filter(|&n| !visited[n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_be_confused_share_a_canonical_form() {
        assert_eq!(canonical_id("01"), canonical_id("1"));
        assert_eq!(canonical_id(" 1"), canonical_id("1"));
        assert_eq!(canonical_id("Abc"), canonical_id("aBC"));
        assert_ne!(canonical_id("10"), canonical_id("1"));
        assert_eq!(canonical_id("000"), "0");
    }

    #[test]
    fn cycles_and_their_downstream_are_found() {
        assert!(nodes_in_cycles(3, &[(0, 1), (1, 2)]).is_empty());
        assert_eq!(
            nodes_in_cycles(4, &[(0, 1), (1, 2), (2, 1), (2, 3)]),
            [1, 2, 3]
        );
        assert_eq!(nodes_in_cycles(1, &[(0, 0)]), [0]);
    }
}
