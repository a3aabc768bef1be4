<?php
// Shared by roundtrip.php and generate.php (driven by shared/tests/php_codec.rs):
// the classes and enums the test sessions use, a session without storage, and
// the JSON form of PHP values documented in shared/src/codec/mod.rs, written
// again here in PHP so the Rust codec's mapping is checked against PHP's own
// view of the values.

declare(strict_types=1);

// Every warning (a failed session_decode(), a skipped key) is an error here.
set_error_handler(static function (int $level, string $message): never {
    throw new ErrorException($message, 0, $level);
}, E_ALL & ~E_DEPRECATED);

enum Suit: string
{
    case Hearts = 'H';
    case Spades = 'S';
}

enum Pure
{
    case A;
    case B;
}

/** Only Serializable (deprecated since PHP 8.1, still written): PHP writes it as C:, its payload these bytes. */
final class Raw implements Serializable
{
    public function __construct(public string $bytes = '') {}

    public function serialize(): string
    {
        return $this->bytes;
    }

    public function unserialize(string $data): void
    {
        $this->bytes = $data;
    }
}

/** __serialize() data, int keys included: PHP writes O:4:"Pair":n:{i:0;...}. */
final class Pair
{
    public function __construct(public array $data = []) {}

    public function __serialize(): array
    {
        return $this->data;
    }

    public function __unserialize(array $data): void
    {
        $this->data = $data;
    }
}

/** Private and protected properties: PHP writes "\0Account\0owner" and "\0*\0balance". */
final class Account
{
    public function __construct(private mixed $owner = null, protected mixed $balance = null, public mixed $tags = null) {}
}

/** A session handler that stores nothing: session_decode()/session_encode() need an active session. */
final class NoStorage implements SessionHandlerInterface
{
    public function open(string $path, string $name): bool
    {
        return true;
    }

    public function close(): bool
    {
        return true;
    }

    public function read(string $id): string
    {
        return '';
    }

    public function write(string $id, string $data): bool
    {
        return true;
    }

    public function destroy(string $id): bool
    {
        return true;
    }

    public function gc(int $max_lifetime): int
    {
        return 0;
    }
}

/** Starts a session that uses $format (`php` or `php_serialize`) and stores nothing. Nothing may be printed before. */
function start_session(string $format): void
{
    if (session_status() === PHP_SESSION_ACTIVE) {
        session_write_close();
    }
    ini_set('session.serialize_handler', $format);
    ini_set('session.use_cookies', '0');
    ini_set('session.use_only_cookies', '0');
    ini_set('session.cache_limiter', '');
    session_set_save_handler(new NoStorage(), false);
    session_start();
}

/** session_encode() as stored: an empty `php` session is "" (session_encode() gives false for it). */
function encoded_session(): string
{
    $encoded = session_encode();
    return $encoded === false ? '' : $encoded;
}

const JSON_FLAGS = JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

/** $_SESSION in the JSON form, as [[name, value], ...] (a JSON object could not keep "" and int-like names apart from PHP's lists). */
function session_json(array $session): string
{
    $variables = [];
    foreach ($session as $name => $value) {
        $variables[] = [(string) $name, php_json($value)];
    }
    return json_encode($variables, JSON_FLAGS);
}

function php_json(mixed $value): mixed
{
    return match (true) {
        is_null($value), is_bool($value), is_int($value) => $value,
        is_float($value) => match (true) {
            is_nan($value) => tag('float', ['value' => 'NAN']),
            is_infinite($value) => tag('float', ['value' => $value > 0 ? 'INF' : '-INF']),
            default => $value,
        },
        is_string($value) => text_json($value),
        is_array($value) => array_json($value),
        $value instanceof UnitEnum => tag('enum', ['class' => get_class($value), 'case' => $value->name]),
        $value instanceof Raw => tag('serializable', ['class' => 'Raw', 'data' => text_json($value->bytes)]),
        $value instanceof Pair => tag('object', ['class' => 'Pair', 'properties' => properties_json($value->data)]),
        default => object_json($value),
    };
}

function tag(string $kind, array $fields): array
{
    return ['$php' => $kind] + $fields;
}

function is_utf8(string $text): bool
{
    return preg_match('//u', $text) === 1;
}

function text_json(string $text): mixed
{
    return is_utf8($text) ? $text : tag('bytes', ['base64' => base64_encode($text)]);
}

function pairs_json(array $entries): array
{
    $pairs = [];
    foreach ($entries as $key => $value) {
        $pairs[] = [is_int($key) ? $key : text_json($key), php_json($value)];
    }
    return $pairs;
}

function array_json(array $array): mixed
{
    if (array_is_list($array)) {
        return array_map('php_json', $array);
    }
    foreach (array_keys($array) as $key) {
        if (is_string($key) && ($key === '$php' || !is_utf8($key))) {
            return tag('array', ['entries' => pairs_json($array)]);
        }
    }
    // Not a list, so json_encode() writes an object with these keys.
    return array_map('php_json', $array);
}

function properties_json(array $properties): mixed
{
    if ($properties === []) {
        return new stdClass();
    }
    foreach (array_keys($properties) as $name) {
        if (is_int($name) || !is_utf8($name)) {
            return pairs_json($properties);
        }
    }
    return array_map('php_json', $properties);
}

function object_json(object $object): array
{
    // (array) gives the names as serialize() writes them ("\0Class\0name", "\0*\0name").
    $properties = (array) $object;
    $class = get_class($object);
    if ($object instanceof __PHP_Incomplete_Class) {
        $class = $properties['__PHP_Incomplete_Class_Name'];
        unset($properties['__PHP_Incomplete_Class_Name']);
    }
    return tag('object', ['class' => $class, 'properties' => properties_json($properties)]);
}
