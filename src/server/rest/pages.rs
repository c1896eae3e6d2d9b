//! Pagination of the list calls: `maxResults` and `pageToken`, the token being the id of the
//! first item of the next page.

use std::collections::HashMap;

use super::errors::RestError;

/// Items per page when `maxResults` is absent.
const DEFAULT_PAGE: usize = 50;

/// One page's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    max: usize,
    token: Option<String>,
}

impl PageRequest {
    /// Reads `maxResults` and `pageToken` from the query.
    pub(crate) fn from_query(query: &HashMap<String, String>) -> Result<Self, RestError> {
        let max = match query.get("maxResults").map(|m| m.trim()) {
            None | Some("") => DEFAULT_PAGE,
            Some(text) => match text.parse::<usize>() {
                Ok(0) => DEFAULT_PAGE,
                Ok(n) => n,
                Err(_) => {
                    return Err(RestError::invalid(format!(
                        "Invalid value for maxResults: {text:?} is not a non-negative integer"
                    )));
                }
            },
        };
        let token = query.get("pageToken").filter(|t| !t.is_empty()).cloned();
        Ok(Self { max, token })
    }

    /// The page of `ids` (sorted) asked for, and the token of the next page if any remain.
    pub(crate) fn page<'a>(&self, ids: &'a [String]) -> (&'a [String], Option<String>) {
        let start = match &self.token {
            Some(token) => ids.partition_point(|id| id < token),
            None => 0,
        };
        let end = start.saturating_add(self.max).min(ids.len());
        (&ids[start..end], ids.get(end).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn pages_follow_their_tokens() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        let first = PageRequest::from_query(&query(&[("maxResults", "2")])).expect("valid");
        let (items, next) = first.page(&ids);
        assert_eq!(items, ["a", "b"]);
        assert_eq!(next.as_deref(), Some("c"));
        let last = PageRequest::from_query(&query(&[("maxResults", "3"), ("pageToken", "c")])).expect("valid");
        let (items, next) = last.page(&ids);
        assert_eq!(items, ["c", "d", "e"]);
        assert_eq!(next, None);
    }

    #[test]
    fn refuses_a_bad_max_results() {
        let error = PageRequest::from_query(&query(&[("maxResults", "ten")])).expect_err("not a number");
        assert_eq!(error.status.as_u16(), 400);
        assert!(error.message.contains("maxResults"), "{}", error.message);
    }
}
