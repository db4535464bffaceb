//! The trace as a table with the tree in its first column (`-o wide` keeps ids and messages
//! whole and names each account's id), or as JSON.

use super::tree::{Node, Problem};

/// Longest STATUS text without `-o wide`.
const STATUS_WIDTH: usize = 90;
const HEADER: [&str; 5] = ["NAME", "ACCOUNT", "ID", "READY", "STATUS"];

/// The table: one row per line of the tree, columns padded to their widest cell.
pub fn table(root: &Node, wide: bool) -> String {
    let mut rows = vec![HEADER.map(String::from)];
    walk(root, "", "", wide, &mut rows);
    let widths: Vec<usize> =
        (0..HEADER.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The tree as pretty JSON.
pub fn json(root: &Node) -> String {
    serde_json::to_string_pretty(root).map_or_else(|e| format!("{{\"error\": \"{e}\"}}"), |s| s + "\n")
}

fn walk(node: &Node, head: &str, tail: &str, wide: bool, rows: &mut Vec<[String; 5]>) {
    rows.push(row(node, head, wide));
    let count = node.conditions.len() + node.children.len();
    let mut index = 0;
    let branch = |last: bool| {
        let (h, t) = if last { ("└─ ", "   ") } else { ("├─ ", "│  ") };
        (format!("{tail}{h}"), format!("{tail}{t}"))
    };
    for problem in &node.conditions {
        index += 1;
        let (h, _) = branch(index == count);
        rows.push(condition(problem, &h, wide));
    }
    for child in &node.children {
        index += 1;
        let (h, t) = branch(index == count);
        walk(child, &h, &t, wide, rows);
    }
}

fn row(node: &Node, head: &str, wide: bool) -> [String; 5] {
    let mut name = node.kind.clone();
    if !node.name.is_empty() {
        name = format!("{name}/{}", node.name);
    }
    let account = node.account.as_ref().map_or_else(String::new, |a| match (&a.id, wide) {
        (Some(id), true) => format!("{} ({id})", a.name),
        _ => a.name.clone(),
    });
    let id = node.id.as_deref().map_or_else(String::new, |id| if wide { id.to_owned() } else { short(id).to_owned() });
    [format!("{head}{name}"), account, id, node.ready.as_str().to_owned(), status(&node.state, &node.message, wide)]
}

fn condition(problem: &Problem, head: &str, wide: bool) -> [String; 5] {
    [
        format!("{head}Condition/{}", problem.type_),
        String::new(),
        String::new(),
        problem.status.clone(),
        status(&problem.reason, &problem.message, wide),
    ]
}

/// `state: message`, where the message does not already start with the state (messages of
/// AWS refusals start with the AWS code, which is also the reason).
fn status(state: &str, message: &str, wide: bool) -> String {
    let text = match (state.is_empty(), message.is_empty()) {
        (_, true) => state.to_owned(),
        (true, false) => message.to_owned(),
        (false, false) if message.starts_with(state) => message.to_owned(),
        (false, false) => format!("{state}: {message}"),
    };
    let text = text.replace('\n', " ");
    if wide || text.chars().count() <= STATUS_WIDTH {
        text
    } else {
        let cut: String = text.chars().take(STATUS_WIDTH - 1).collect();
        format!("{cut}…")
    }
}

/// The last part of an ARN (`role/x`, `key/<uuid>`), or the id itself.
fn short(id: &str) -> &str {
    if id.starts_with("arn:") { id.splitn(6, ':').nth(5).unwrap_or(id) } else { id }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::tree::{Account, Ready};

    fn leaf(kind: &str, id: &str) -> Node {
        Node {
            kind: kind.into(),
            account: Some(Account { name: "dev".into(), id: Some("111111111111".into()) }),
            id: Some(id.into()),
            ready: Ready::None,
            state: "Exists".into(),
            ..Node::default()
        }
    }

    #[test]
    fn the_tree_is_drawn_in_the_first_column_and_wide_keeps_everything() {
        let long = "AccessDenied: ".to_owned() + &"x".repeat(200);
        let root = Node {
            kind: "DataScienceEnvironment".into(),
            name: "fraud".into(),
            ready: Ready::False,
            state: "Stalled".into(),
            message: long.clone(),
            conditions: vec![Problem {
                type_: "StorageReady".into(),
                status: "False".into(),
                reason: "StoragePending".into(),
                message: "waiting".into(),
            }],
            children: vec![
                Node { children: vec![leaf("VPC", "vpc-1")], ..leaf("Network", "x") },
                leaf("IAMRole", "arn:aws:iam::111111111111:role/fraud-execution"),
            ],
            ..Node::default()
        };
        let text = table(&root, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME "), "{text}");
        assert!(lines[1].starts_with("DataScienceEnvironment/fraud "), "{text}");
        assert!(lines[1].ends_with('…') && lines[1].contains("Stalled: AccessDenied: xxx"), "{text}");
        assert!(
            lines[2].starts_with("├─ Condition/StorageReady ") && lines[2].ends_with("StoragePending: waiting"),
            "{text}"
        );
        assert!(lines[3].starts_with("├─ Network "), "{text}");
        assert!(lines[4].starts_with("│  └─ VPC "), "{text}");
        assert!(lines[5].starts_with("└─ IAMRole ") && lines[5].contains(" role/fraud-execution "), "{text}");
        let wide = table(&root, true);
        assert!(wide.contains(&long) && wide.contains("arn:aws:iam::111111111111:role/fraud-execution"), "{wide}");
        assert!(wide.contains("dev (111111111111)"), "{wide}");
        // Columns line up: STATUS starts at the same character on every row.
        let at = |line: &str, what: &str| line.char_indices().position(|(i, _)| line[i..].starts_with(what));
        assert_eq!(at(lines[0], "STATUS"), at(lines[4], "Exists"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&json(&root)).unwrap();
        assert_eq!(json["children"][0]["children"][0]["id"], "vpc-1");
        assert_eq!(json["conditions"][0]["type"], "StorageReady");
        assert_eq!(json["children"][1]["ready"], "-");
    }
}
