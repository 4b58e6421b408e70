//! Error text for people: libtorch's errors carry a C++ backtrace ("Exception raised from …",
//! "frame #0: …") inside their message, which tch passes on as the error string. The message
//! the user reads keeps libtorch's first lines and drops the backtrace.

/// `text` without libtorch's C++ backtrace: everything from "Exception raised from" or the first
/// "frame #N:" line on, and trailing blank lines and punctuation.
pub fn without_backtrace(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("Exception raised from") || trimmed.starts_with("frame #") {
            break;
        }
        kept.push(line);
    }
    let joined = kept.join(" ");
    let joined = joined.trim().trim_end_matches(['\n', ' ']);
    // tch wraps the message as `Torch("…")`: keep the inside.
    let joined = joined.strip_prefix("Torch(\"").map_or(joined, |s| s.trim_end_matches("\")").trim_end());
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_backtraces_are_dropped() {
        let raw = "Torch(\"The size of tensor a (12) must match the size of tensor b (19) at non-singleton dimension 0\n\
                   Exception raised from infer_size_impl at /pytorch/aten/src/ATen/ExpandUtils.cpp:31 (most recent call first):\n\
                   frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x98 (0x7f in libc10.so)\n\
                   frame #1: at::infer_size(...)\")";
        assert_eq!(
            without_backtrace(raw),
            "The size of tensor a (12) must match the size of tensor b (19) at non-singleton dimension 0"
        );
        assert_eq!(without_backtrace("plain message"), "plain message");
    }
}
