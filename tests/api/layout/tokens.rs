//! The scanner: comments and literals blanked, tokens with their lines, brackets matched,
//! `#[cfg(test)]` items cut out, and `fn` items measured.

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) text: String,
    pub(super) line: usize,
}

pub(super) fn is_ident(text: &str) -> bool {
    text.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// The source with comments and literals' contents turned into spaces (newlines kept), so that
/// no brace or `fn` inside them is seen.
pub(super) fn blank_comments_and_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        match literal_end(&chars, i) {
            Some(end) => {
                out.extend(
                    chars[i..end]
                        .iter()
                        .map(|&c| if c == '\n' { '\n' } else { ' ' }),
                );
                i = end;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// Where the comment or literal starting at `i` ends (exclusive), if one starts there.
fn literal_end(chars: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| chars.get(k).copied();
    let find = |from: usize, pred: &dyn Fn(usize) -> bool| (from..chars.len()).find(|&k| pred(k));
    let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    match (chars[i], at(i + 1)) {
        ('/', Some('/')) => Some(find(i, &|k| chars[k] == '\n').unwrap_or(chars.len())),
        ('/', Some('*')) => {
            let mut depth = 0;
            let mut k = i;
            while k + 1 < chars.len() {
                match (chars[k], chars[k + 1]) {
                    ('/', '*') => (depth, k) = (depth + 1, k + 2),
                    ('*', '/') if depth == 1 => return Some(k + 2),
                    ('*', '/') => (depth, k) = (depth - 1, k + 2),
                    _ => k += 1,
                }
            }
            Some(chars.len())
        }
        ('"', _) => {
            let mut k = i + 1;
            while k < chars.len() && chars[k] != '"' {
                k += if chars[k] == '\\' { 2 } else { 1 };
            }
            Some((k + 1).min(chars.len()))
        }
        ('r', Some('"' | '#')) if !ident_before || matches!(at(i - 1), Some('b' | 'c')) => {
            let hashes = (i + 1..chars.len())
                .take_while(|&k| chars[k] == '#')
                .count();
            if at(i + 1 + hashes) != Some('"') {
                return None;
            }
            let closes = |k: usize| chars[k] == '"' && (1..=hashes).all(|h| at(k + h) == Some('#'));
            Some(find(i + 2 + hashes, &closes).map_or(chars.len(), |k| k + 1 + hashes))
        }
        ('\'', Some('\\')) => {
            Some(find(i + 3, &|k| chars[k] == '\'').map_or(chars.len(), |k| k + 1))
        }
        // A char literal, unless it is a lifetime (`'a` with no closing quote right after).
        ('\'', Some(_)) if at(i + 2) == Some('\'') => Some(i + 3),
        _ => None,
    }
}

pub(super) fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let mut end = start + c.len_utf8();
        if c == '\n' {
            line += 1;
            continue;
        } else if c.is_whitespace() {
            continue;
        } else if c.is_alphanumeric() || c == '_' {
            while let Some(&(k, d)) = chars
                .peek()
                .filter(|(_, d)| d.is_alphanumeric() || *d == '_')
            {
                end = k + d.len_utf8();
                chars.next();
            }
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            end += chars.next().unwrap().1.len_utf8();
        }
        tokens.push(Token {
            text: text[start..end].to_string(),
            line,
        });
    }
    tokens
}

/// The index of the bracket closing the one at `open`.
fn matching(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, token) in tokens.iter().enumerate().skip(open) {
        match token.text.as_str() {
            "{" | "(" | "[" => depth += 1,
            "}" | ")" | "]" => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// The tokens without the items under `#[cfg(test)]`, and the names of the out-of-line test
/// modules among them (`#[cfg(test)] mod tests;`).
pub(super) fn strip_test_items(tokens: Vec<Token>) -> (Vec<Token>, Vec<String>) {
    const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let (mut kept, mut test_modules) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < tokens.len() {
        let is_cfg_test = tokens.len() >= i + CFG_TEST.len()
            && CFG_TEST
                .iter()
                .zip(&tokens[i..])
                .all(|(want, token)| token.text == *want);
        if !is_cfg_test {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let mut item = i;
        while tokens.get(item).is_some_and(|t| t.text == "#") {
            item = matching(&tokens, item + 1).map_or(tokens.len(), |close| close + 1);
        }
        let mut end = item;
        while end < tokens.len() && !matches!(tokens[end].text.as_str(), ";" | "{") {
            end += 1;
        }
        if tokens.get(end).is_some_and(|t| t.text == ";") {
            if let [.., module, name] = &tokens[item..end] {
                if module.text == "mod" {
                    test_modules.push(name.text.clone());
                }
            }
        }
        let close = if tokens.get(end).is_some_and(|t| t.text == "{") {
            matching(&tokens, end)
        } else {
            Some(end)
        };
        i = close.map_or(tokens.len(), |close| close + 1);
    }
    (kept, test_modules)
}

pub(super) struct Function {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) lines: usize,
}

/// Every `fn` with a body (nested ones too; trait declarations ending in `;` have none).
pub(super) fn functions(tokens: &[Token]) -> Vec<Function> {
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Some(name) = tokens
            .get(i + 1)
            .filter(|n| token.text == "fn" && is_ident(&n.text))
        else {
            continue;
        };
        // The body is the first `{` outside the parameters and types, before any `;`.
        let mut depth = 0i32;
        let body = tokens[i + 2..].iter().enumerate().find_map(|(k, t)| {
            match t.text.as_str() {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                ";" if depth == 0 => return Some(None),
                "{" if depth == 0 => return Some(Some(i + 2 + k)),
                _ => {}
            }
            None
        });
        if let Some(close) = body.flatten().and_then(|open| matching(tokens, open)) {
            let lines = tokens[close].line - token.line + 1;
            found.push(Function {
                name: name.text.clone(),
                line: token.line,
                lines,
            });
        }
    }
    found
}
