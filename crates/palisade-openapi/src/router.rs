//! The route table: a trie over path segments, built once at load time.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::template::{MixedSegment, Segment};

/// Maps request segments to the index of the route whose template matches
/// them best: at each position a literal child is tried first, then mixed
/// children (more literal text first, then spec order), then the parameter
/// child, backtracking when a branch fails further down. Each trie node is
/// visited at most once per lookup.
#[derive(Debug, Clone, Default)]
pub(crate) struct Router {
    root: Node,
    max_segments: usize,
}

#[derive(Debug, Clone, Default)]
struct Node {
    literals: HashMap<String, Node>,
    mixed: Vec<MixedChild>,
    param: Option<Box<Node>>,
    route: Option<usize>,
}

#[derive(Debug, Clone)]
struct MixedChild {
    shape: String,
    literal_len: usize,
    matcher: MixedSegment,
    node: Node,
}

impl Router {
    /// Adds the template made of `segments` as route `route`. Fails with the
    /// index of an already added route whose template matches the same paths.
    pub(crate) fn insert(&mut self, segments: &[Segment], route: usize) -> Result<(), usize> {
        let mut node = &mut self.root;
        for segment in segments {
            node = match segment {
                Segment::Literal(text) => node.literals.entry(text.clone()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_with(Box::default).as_mut(),
                Segment::Mixed(matcher) => {
                    let shape = matcher.shape();
                    let at = match node.mixed.iter().position(|c| c.shape == shape) {
                        Some(at) => at,
                        None => {
                            let literal_len = matcher.literal_len();
                            let at = node
                                .mixed
                                .iter()
                                .position(|c| c.literal_len < literal_len)
                                .unwrap_or(node.mixed.len());
                            node.mixed.insert(
                                at,
                                MixedChild {
                                    shape,
                                    literal_len,
                                    matcher: matcher.clone(),
                                    node: Node::default(),
                                },
                            );
                            at
                        }
                    };
                    &mut node.mixed[at].node
                }
            };
        }
        if let Some(existing) = node.route {
            return Err(existing);
        }
        node.route = Some(route);
        self.max_segments = self.max_segments.max(segments.len());
        Ok(())
    }

    /// The largest number of segments of any template; longer paths cannot match.
    pub(crate) fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// The route matching the (normalized) request segments, if any.
    pub(crate) fn find(&self, segments: &[Cow<'_, str>]) -> Option<usize> {
        find_in(&self.root, segments)
    }
}

fn find_in(node: &Node, segments: &[Cow<'_, str>]) -> Option<usize> {
    let Some((first, rest)) = segments.split_first() else {
        return node.route;
    };
    let first = first.as_ref();
    if let Some(found) = node
        .literals
        .get(first)
        .and_then(|child| find_in(child, rest))
    {
        return Some(found);
    }
    let mut scratch = Vec::new();
    for child in &node.mixed {
        scratch.clear();
        if child.matcher.captures(first, &mut scratch) {
            if let Some(found) = find_in(&child.node, rest) {
                return Some(found);
            }
        }
    }
    match &node.param {
        Some(child) if !first.is_empty() => find_in(child, rest),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::template::parse;

    fn router(templates: &[&str]) -> Router {
        let mut router = Router::default();
        for (index, template) in templates.iter().enumerate() {
            let segments = parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
            router
                .insert(&segments, index)
                .unwrap_or_else(|e| panic!("{template} conflicts with #{e}"));
        }
        router
    }

    fn find(router: &Router, path: &str) -> Option<usize> {
        let segments: Vec<Cow<'_, str>> = path[1..].split('/').map(Cow::Borrowed).collect();
        router.find(&segments)
    }

    #[test]
    fn literal_then_mixed_then_parameter_at_each_position() {
        let r = router(&["/f/{any}", "/f/{name}.{ext}", "/f/readme", "/f/{n}.tar.{z}"]);
        assert_eq!(find(&r, "/f/readme"), Some(2));
        assert_eq!(find(&r, "/f/a.tar.gz"), Some(3));
        assert_eq!(find(&r, "/f/a.txt"), Some(1));
        assert_eq!(find(&r, "/f/a"), Some(0));
        assert_eq!(find(&r, "/f/"), None);
    }

    #[test]
    fn backtracks_from_a_literal_that_leads_nowhere() {
        let r = router(&["/users/me", "/users/{id}/posts"]);
        assert_eq!(find(&r, "/users/me"), Some(0));
        assert_eq!(find(&r, "/users/me/posts"), Some(1));
        assert_eq!(find(&r, "/users/me/likes"), None);
    }

    #[test]
    fn equivalent_templates_conflict() {
        let mut r = router(&["/a/{id}", "/a/{x}.{y}"]);
        let segments = |t: &str| parse(t).expect("valid template");
        assert_eq!(r.insert(&segments("/a/{name}"), 9), Err(0));
        assert_eq!(r.insert(&segments("/a/{p}.{q}"), 9), Err(1));
        assert_eq!(r.insert(&segments("/a/{p}.{q}/"), 9), Ok(()));
        assert_eq!(r.max_segments(), 3);
    }
}
