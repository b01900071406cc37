//! A small IAM policy evaluator, for proving from a template what a role
//! may and may not do.
//!
//! Enough of IAM's policy evaluation to answer "may this principal do this
//! action on this resource": Allow/Deny statements, `Action`/`NotAction`,
//! `Resource`/`NotResource`, `Principal` (key policies, bucket policies), the
//! `*` and `?` wildcards, and the condition operators the templates use.
//! An explicit deny wins, then an allow, else the request is implicitly denied.
//! What it does not model (permission boundaries, SCPs, sessions, IAM's
//! delegation through the account root in key policies) the templates do not use.

use serde_json::Value;

/// IAM's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ImplicitDeny,
    ExplicitDeny,
}

/// A call to judge: an action on a resource, by whom, in what context.
#[derive(Debug, Clone)]
pub struct Request {
    pub action: String,
    pub resource: String,
    /// The caller, for resource policies (key and bucket policies): an
    /// IAM ARN, or `service:NAME` for a service principal.
    pub principal: Option<String>,
    /// Condition keys and their values in this request.
    pub context: Vec<(String, String)>,
}

impl Request {
    pub fn new(action: &str, resource: &str) -> Self {
        Self {
            action: action.to_owned(),
            resource: resource.to_owned(),
            principal: None,
            context: Vec::new(),
        }
    }

    pub fn by(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_owned());
        self
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// The decision of `policies` together (identity or resource policies) on `request`.
pub fn evaluate(policies: &[Value], request: &Request) -> Decision {
    let mut allowed = false;
    for policy in policies {
        for statement in statements(policy) {
            if !applies(statement, request) {
                continue;
            }
            match statement["Effect"].as_str() {
                Some("Deny") => return Decision::ExplicitDeny,
                Some("Allow") => allowed = true,
                other => panic!("statement with Effect {other:?}: {statement}"),
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

fn statements(policy: &Value) -> Vec<&Value> {
    match &policy["Statement"] {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![&policy["Statement"]],
        other => panic!("a policy's Statement is {other}"),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        other => panic!("expected a string or a list of strings, found {other}"),
    }
}

fn either(statement: &Value, positive: &str, negative: &str, matches: impl Fn(&str) -> bool) -> bool {
    match (&statement[positive], &statement[negative]) {
        (p, Value::Null) if !p.is_null() => strings(p).iter().any(|pattern| matches(pattern)),
        (Value::Null, n) if !n.is_null() => !strings(n).iter().any(|pattern| matches(pattern)),
        _ => panic!("a statement needs exactly one of {positive} and {negative}: {statement}"),
    }
}

fn applies(statement: &Value, request: &Request) -> bool {
    let action = either(statement, "Action", "NotAction", |p| wildcard(p, &request.action, true));
    let resource = either(statement, "Resource", "NotResource", |p| {
        wildcard(p, &request.resource, false)
    });
    action && resource && principal_matches(statement, request) && conditions_hold(statement, request)
}

fn principal_matches(statement: &Value, request: &Request) -> bool {
    let principal = &statement["Principal"];
    if principal.is_null() {
        // An identity policy: it applies to whoever holds it.
        return true;
    }
    let Some(caller) = &request.principal else {
        panic!("a resource policy's statement needs a request with a principal: {statement}");
    };
    if principal == "*" {
        return true;
    }
    let map = principal.as_object().expect("Principal is \"*\" or an object");
    map.iter().any(|(kind, names)| {
        strings(names).iter().any(|name| match kind.as_str() {
            "AWS" => name == "*" || name == caller,
            "Service" => format!("service:{name}") == *caller,
            other => panic!("principal kind {other} is not modelled"),
        })
    })
}

fn conditions_hold(statement: &Value, request: &Request) -> bool {
    let Some(conditions) = statement["Condition"].as_object() else {
        return true;
    };
    conditions.iter().all(|(operator, keys)| {
        let keys = keys.as_object().expect("a condition maps keys to values");
        keys.iter()
            .all(|(key, values)| condition_holds(operator, key, &strings(values), request))
    })
}

fn condition_holds(operator: &str, key: &str, values: &[String], request: &Request) -> bool {
    // ForAllValues: every value of the key in the request matches (a
    // multi-valued key, e.g. `dynamodb:Attributes`, is given once per value
    // with `Request::with`); a request without the key matches.
    let (operator, for_all) = match operator.strip_prefix("ForAllValues:") {
        Some(operator) => (operator, true),
        None => (operator, false),
    };
    let (base, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    let mut actual: Vec<&str> = request
        .context
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
        .collect();
    if actual.is_empty() {
        actual.extend(principal_key(key, request));
    }
    if actual.is_empty() {
        // A key the request lacks: no condition holds but the negated ones.
        return for_all || if_exists || base.contains("Not");
    }
    if for_all {
        return actual.iter().all(|a| value_matches(base, values, a));
    }
    value_matches(base, values, actual[0])
}

/// Whether one request value `actual` satisfies `base` (an operator without
/// its set or `IfExists` qualifiers) against the policy's `values`.
fn value_matches(base: &str, values: &[String], actual: &str) -> bool {
    let equal = || values.iter().any(|v| v == actual);
    let like = || values.iter().any(|v| wildcard(v, actual, false));
    match base {
        "StringEquals" | "ArnEquals" => equal(),
        "StringNotEquals" | "ArnNotEquals" => !equal(),
        "StringLike" | "ArnLike" => like(),
        "StringNotLike" | "ArnNotLike" => !like(),
        "StringEqualsIgnoreCase" => values.iter().any(|v| v.eq_ignore_ascii_case(actual)),
        "Bool" => values.iter().any(|v| v.eq_ignore_ascii_case(actual)),
        other => panic!("condition operator {other} is not modelled"),
    }
}

/// The keys IAM sets from the caller itself: `aws:PrincipalArn` (the
/// caller's ARN) and `aws:PrincipalAccount` (its account).
fn principal_key<'r>(key: &str, request: &'r Request) -> Option<&'r str> {
    let principal = request.principal.as_deref().filter(|p| p.starts_with("arn:"))?;
    if key.eq_ignore_ascii_case("aws:PrincipalArn") {
        Some(principal)
    } else if key.eq_ignore_ascii_case("aws:PrincipalAccount") {
        principal.split(':').nth(4)
    } else {
        None
    }
}

/// IAM's wildcards: `*` any run of characters (also none), `?` exactly one.
pub fn wildcard(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if ignore_case {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (pattern, text) = (fold(pattern), fold(text));
    // Greedy matching with backtracking to the last `*`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn policy_wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("s3:Get*", "s3:GetObject", true),
            ("s3:Get*", "s3:PutObject", false),
            ("s3:?etObject", "s3:GetObject", true),
            ("s3:?etObject", "s3:SetObject", true),
            ("s3:?etObject", "s3:GetObjects", false),
            ("s3:?etObject", "s3:etObject", false),
            ("arn:aws:s3:::b/lifeboat/*", "arn:aws:s3:::b/lifeboat/packs/ab/cd", true),
            ("arn:aws:s3:::b/lifeboat/*", "arn:aws:s3:::b/lifeboat", false),
            ("arn:aws:s3:::b/lifeboat/*", "arn:aws:s3:::b/other/x", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a*c", "abcbc", true),
            ("??", "ab", true),
            ("??", "abc", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(wildcard(pattern, text, false), expected, "{pattern:?} ~ {text:?}");
        }
        assert!(wildcard("S3:getobject", "s3:GetObject", true), "actions ignore case");
        assert!(
            !wildcard("arn:aws:s3:::B/*", "arn:aws:s3:::b/k", false),
            "resources do not"
        );
    }

    #[test]
    fn policy_evaluation() {
        let identity = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:Get*", "s3:PutObject"], "Resource": "arn:aws:s3:::b/store/*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
             "Condition": {"StringLike": {"s3:prefix": ["store", "store/*"]}}},
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["kms:ScheduleKeyDeletion", "kms:Disable*"], "Resource": "*"},
            {"Effect": "Deny", "NotAction": ["s3:*", "kms:*"], "Resource": "*"},
        ]});
        let policies = [identity];
        let cases = [
            (
                Request::new("s3:GetObject", "arn:aws:s3:::b/store/config"),
                Decision::Allow,
            ),
            (
                Request::new("s3:getobjecttagging", "arn:aws:s3:::b/store/x"),
                Decision::Allow,
            ),
            (
                Request::new("s3:PutObject", "arn:aws:s3:::b/store/packs/1"),
                Decision::Allow,
            ),
            (
                Request::new("s3:DeleteObject", "arn:aws:s3:::b/store/packs/1"),
                Decision::ImplicitDeny,
            ),
            (
                Request::new("s3:GetObject", "arn:aws:s3:::b/elsewhere"),
                Decision::ImplicitDeny,
            ),
            (
                Request::new("s3:GetObject", "arn:aws:s3:::other/store/x"),
                Decision::ImplicitDeny,
            ),
            (
                Request::new("s3:ListBucket", "arn:aws:s3:::b").with("s3:prefix", "store/index/"),
                Decision::Allow,
            ),
            (
                Request::new("s3:ListBucket", "arn:aws:s3:::b").with("s3:prefix", "elsewhere/"),
                Decision::ImplicitDeny,
            ),
            // A condition on a key the request lacks does not hold.
            (Request::new("s3:ListBucket", "arn:aws:s3:::b"), Decision::ImplicitDeny),
            (Request::new("kms:Decrypt", "arn:aws:kms:r:1:key/k"), Decision::Allow),
            (
                Request::new("kms:ScheduleKeyDeletion", "arn:aws:kms:r:1:key/k"),
                Decision::ExplicitDeny,
            ),
            (
                Request::new("kms:DisableKey", "arn:aws:kms:r:1:key/k"),
                Decision::ExplicitDeny,
            ),
            (
                Request::new("dynamodb:DeleteTable", "arn:aws:dynamodb:r:1:table/t"),
                Decision::ExplicitDeny,
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(evaluate(&policies, &request), expected, "{request:?}");
        }
        assert_eq!(
            evaluate(&[], &Request::new("s3:GetObject", "*")),
            Decision::ImplicitDeny,
            "no policy allows nothing"
        );

        // Resource policies: principals and Bool conditions.
        let resource = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:role/a"]}, "Action": "kms:Decrypt", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:Encrypt", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ]});
        let policies = [resource];
        let decrypt = || Request::new("kms:Decrypt", "*");
        assert_eq!(
            evaluate(&policies, &decrypt().by("arn:aws:iam::1:role/a")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&policies, &decrypt().by("arn:aws:iam::1:role/b")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(
                &policies,
                &Request::new("kms:Encrypt", "*").by("service:logs.amazonaws.com")
            ),
            Decision::Allow
        );
        assert_eq!(
            evaluate(
                &policies,
                &decrypt()
                    .by("arn:aws:iam::1:role/a")
                    .with("aws:SecureTransport", "false")
            ),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(
                &policies,
                &decrypt()
                    .by("arn:aws:iam::1:role/a")
                    .with("aws:SecureTransport", "true")
            ),
            Decision::Allow
        );
    }

    /// The condition keys IAM derives from the caller: `aws:PrincipalArn` and
    /// `aws:PrincipalAccount`, matched with ArnLike and StringEquals.
    #[test]
    fn policy_conditions_on_the_principal() {
        let policy = json!({"Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:CreateGrant", "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:PrincipalAccount": "111122223333", "kms:ViaService": "rds.us-west-2.amazonaws.com"},
                "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/lifeboat/prod/*"}
            }
        }]});
        let policies = [policy];
        let decide = |principal: &str, via: Option<&str>| {
            let mut request = Request::new("kms:CreateGrant", "*").by(principal);
            if let Some(via) = via {
                request = request.with("kms:ViaService", via);
            }
            evaluate(&policies, &request)
        };
        let rds = Some("rds.us-west-2.amazonaws.com");
        let cases = [
            (
                "arn:aws:iam::111122223333:role/lifeboat/prod/prod-SnapshotRole",
                rds,
                Decision::Allow,
            ),
            (
                "arn:aws:iam::111122223333:role/lifeboat/prod/nested/x",
                rds,
                Decision::Allow,
            ),
            (
                "arn:aws:iam::111122223333:role/lifeboat/prod/x",
                None,
                Decision::ImplicitDeny,
            ),
            (
                "arn:aws:iam::111122223333:role/lifeboat/prod/x",
                Some("s3.us-west-2.amazonaws.com"),
                Decision::ImplicitDeny,
            ),
            (
                "arn:aws:iam::111122223333:role/lifeboat/production/x",
                rds,
                Decision::ImplicitDeny,
            ),
            (
                "arn:aws:iam::111122223333:role/prod-SnapshotRole",
                rds,
                Decision::ImplicitDeny,
            ),
            (
                "arn:aws:iam::999999999999:role/lifeboat/prod/x",
                rds,
                Decision::ImplicitDeny,
            ),
            ("service:rds.amazonaws.com", rds, Decision::ImplicitDeny),
        ];
        for (principal, via, expected) in cases {
            assert_eq!(decide(principal, via), expected, "{principal} via {via:?}");
        }
    }
}
