/// Splits a module parameter string the way the kernel's `parse_args` does.
///
/// Words are separated by white space; a word is `name=value` or a bare `name` (a bool set to
/// true). Double quotes group characters, including spaces, and are removed: both
/// `name="a b"` and `"name=a b"` give the value `a b`. In names, `-` and `_` are the same; the
/// result uses `_`.
enum ParameterString {
    struct Assignment: Equatable, Sendable {
        var name: String
        /// Nil for a bare `name`.
        var value: String?
    }

    static func parse(_ text: String) -> [Assignment] {
        var assignments: [Assignment] = []
        var characters = Array(text)[...]
        while true {
            while let first = characters.first, first.isWhitespace { characters.removeFirst() }
            guard !characters.isEmpty else { return assignments }

            var word = ""
            var quoted = false
            while let character = characters.first, quoted || !character.isWhitespace {
                characters.removeFirst()
                if character == "\"" {
                    quoted.toggle()
                } else {
                    word.append(character)
                }
            }
            if let equals = word.firstIndex(of: "=") {
                assignments.append(Assignment(name: normalize(String(word[..<equals])),
                                              value: String(word[word.index(after: equals)...])))
            } else {
                assignments.append(Assignment(name: normalize(word), value: nil))
            }
        }
    }

    static func normalize(_ name: String) -> String {
        name.replacingDashes()
    }
}
