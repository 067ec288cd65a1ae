// Errors of the Whisper layer, one type per domain: loading a model, hooks and interventions,
// decoding, conditions (what an experiment changes), and the model's inputs. Each has a code, a
// message naming the file or thing and what is allowed, and the error underneath.
import AuscultTensor

/// Why a model could not be found or loaded: a missing, extra or misshapen tensor, an unknown
/// or corrupt format, no tokenizer.
public struct ModelLoadError: AuscultError, Sendable {
    public enum Code: String, Sendable {
        case modelNotFound, unknownFormat, corruptModel, missingTensor, unexpectedTensor, shapeMismatch
        case tokenizerMissing
    }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}

/// Why a hook point, an intervention on it or a cache of it was refused: an unknown or ambiguous
/// name, a read-only point changed, a selector (heads, frames, positions) outside the point, a
/// value of the wrong shape, an activation not cached.
public struct HookError: AuscultError, Sendable {
    public enum Code: String, Sendable {
        case unknownHook, ambiguousHook, readOnly, invalidSelector, shapeMismatch, notCached, invalidValue
    }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}

/// Why decoding or teacher-forced scoring was refused: a token outside the vocabulary, an
/// unknown language, options that do not go together, sequences that do not fit.
public struct DecodingError: AuscultError, Sendable {
    public enum Code: String, Sendable { case invalidToken, unknownLanguage, invalidOptions, invalidSequences }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}

/// Why a condition (what an experiment changes: `zero encoder.blocks.1.hook_attn_out`,
/// `skip decoder.blocks.2+3`, `scale H=2`) was refused: bad syntax, a target that is not a block
/// or hook point, one that cannot be changed that way, a mode that needs what is missing.
public struct ConditionError: AuscultError, Sendable {
    public enum Code: String, Sendable { case syntax, unknownTarget, notAblatable, invalidSelector, unsupported }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}

/// Why the model's input was refused (audio, log-mel windows, features, datasets): the value
/// or file named, and what is allowed.
public struct WhisperError: AuscultError, Sendable {
    public enum Code: String, Sendable { case invalidArgument, datasetNotFound }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}

/// Why a gradient was refused: a backend without backward operations, a metric that does not fit
/// the run (a position or token outside it), an activation the backward pass needs but lacks,
/// or what it cannot differentiate yet (interventions).
public struct GradientError: AuscultError, Sendable {
    public enum Code: String, Sendable {
        case unsupportedBackend, invalidMetric, missingActivation, shapeMismatch, unsupported
    }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}
