// The library's errors never name command-line flags; the command line adds the flag that
// resolves them.
import AuscultLens
import AuscultSAE

/// A library error with the flag hint the command line adds to it.
struct FlagHint: Error, CustomStringConvertible {
    let base: Error
    let hint: String
    var description: String { "\(base) (\(hint))" }

    /// `error` with the flag that resolves it, when there is one.
    static func annotate(_ error: Error) -> Error {
        switch error {
        case let e as LensError where e.code == .conflictingRun:
            return FlagHint(base: e, hint: "--fresh starts over; --out names another directory")
        case let e as StoreError where e.code == .occupied:
            return FlagHint(base: e, hint: "--out names another one; auscult index --fresh rebuilds an index")
        default:
            return error
        }
    }
}
