//! Metric labels for Dfns request paths: ids replaced by `{id}` and the query dropped, so that
//! the number of series stays bounded by the number of endpoints, not of objects.

/// `/auth/service-accounts/us-2ba4q-gftpk-8s7qp0i2b6qgd28b/deactivate?x=1` becomes
/// `/auth/service-accounts/{id}/deactivate`.
pub fn endpoint_label(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut label = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        label.push('/');
        label.push_str(if looks_like_id(segment) {
            "{id}"
        } else {
            segment
        });
    }
    if label.is_empty() {
        label.push('/');
    }
    label
}

/// Dfns ids are a short lowercase prefix, a dash and random characters (`us-…`, `to-…`, `pm-…`,
/// `as-…`, `cr-…`); anything with a digit or a percent-escape is treated as an id too, since
/// endpoint names are plain words (`service-accounts`, `login`).
fn looks_like_id(segment: &str) -> bool {
    if segment.contains('%') || segment.bytes().any(|b| b.is_ascii_digit()) {
        return true;
    }
    segment
        .split_once('-')
        .is_some_and(|(prefix, rest)| (2..=3).contains(&prefix.len()) && !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_placeholders_and_queries_are_dropped() {
        assert_eq!(
            endpoint_label("/auth/service-accounts/us-2ba4q-gftpk-8s7qp0i2b6qgd28b/deactivate"),
            "/auth/service-accounts/{id}/deactivate"
        );
        assert_eq!(
            endpoint_label("/permissions/pm-aaaa-bbbb-cccccccc/assignments/as-xx11-yy22-zz33"),
            "/permissions/{id}/assignments/{id}"
        );
        assert_eq!(endpoint_label("/auth/pats/to-1"), "/auth/pats/{id}");
        assert_eq!(
            endpoint_label("/auth/pats?limit=100&paginationToken=abc"),
            "/auth/pats"
        );
        assert_eq!(endpoint_label("/auth/pats/..%2Fx%20y"), "/auth/pats/{id}");
        assert_eq!(endpoint_label(""), "/");
    }

    #[test]
    fn endpoint_names_with_dashes_are_kept() {
        assert_eq!(
            endpoint_label("/auth/service-accounts"),
            "/auth/service-accounts"
        );
        assert_eq!(endpoint_label("/auth/login/init"), "/auth/login/init");
        assert_eq!(endpoint_label("/auth/action/init"), "/auth/action/init");
    }
}
