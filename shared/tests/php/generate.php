<?php
// php generate.php <format> <seed> <count> <output>
//
// Writes <count> random sessions as PHP stores them in <format> (`php` or
// `php_serialize`), from mt_srand(<seed>): one line each, "<base64 of
// session_encode()> <JSON form or ->" ("-" when the session holds references
// or one object twice, whose JSON form PHP cannot see).

declare(strict_types=1);

// Before common.php is compiled: its Raw class is deprecated (on purpose), and
// any output before the session starts would stop session ini changes.
error_reporting(E_ALL & ~E_DEPRECATED);
ini_set('display_errors', 'stderr');

require __DIR__ . '/common.php';

[, $format, $seed, $count, $output] = $argv;
mt_srand((int) $seed);
start_session($format);

/** Set when the session being built holds a PHP reference or an object twice. */
$shared = false;
/** Objects of the session being built, to use again (PHP writes r:). */
$objects = [];

function pick(array $choices): mixed
{
    return $choices[mt_rand(0, count($choices) - 1)];
}

function random_int64(): int
{
    return match (mt_rand(0, 3)) {
        0 => mt_rand(-1000, 1000),
        1 => pick([PHP_INT_MAX, PHP_INT_MIN, 0, -1]),
        default => (mt_rand() << 33) ^ (mt_rand() << 2) ^ mt_rand(0, 3),
    };
}

function random_float(): float
{
    return match (mt_rand(0, 4)) {
        0 => pick([0.1, 0.5, 1.0, -0.0, 0.0, 1e25, 1e-5, 1e15, 1e17, 0.0001, 5e-324, PHP_FLOAT_MAX, INF, -INF, NAN]),
        1 => mt_rand() / mt_rand(1, 1000),
        // Few binary fraction digits: often exactly halfway between two shortest decimals.
        2 => (float) ((mt_rand() << 22) ^ mt_rand()) / 2 ** mt_rand(0, 12),
        // Any bit pattern: all the float texts serialize() writes.
        default => unpack('E', pack('J', random_int64()))[1],
    };
}

function random_bytes_string(): string
{
    $bytes = '';
    for ($i = mt_rand(0, 8); $i > 0; $i--) {
        $bytes .= chr(mt_rand(0, 255));
    }
    return $bytes;
}

function random_text(): string
{
    $pieces = ['', 'a', 'héllo', '"', ';', '|', '{}', "\0", 'a:1:{', 's:1:"', 'ünï', '日本', '🙂', ' ', '\\', "\n"];
    $text = '';
    for ($i = mt_rand(0, 4); $i > 0; $i--) {
        $text .= pick($pieces);
    }
    return $text;
}

function random_key(): int|string
{
    return match (mt_rand(0, 5)) {
        0 => mt_rand(-5, 20),
        1 => random_int64(),
        2 => pick(['', '$php', '07', '-0', '5', '-3', 'x|y', '9223372036854775808']),
        3 => random_bytes_string(),
        default => random_text(),
    };
}

function random_entries(int $depth, bool $list): array
{
    global $shared;
    $entries = [];
    for ($i = mt_rand(0, 5); $i > 0; $i--) {
        if ($list) {
            $entries[] = random_value($depth + 1);
        } else {
            $entries[random_key()] = random_value($depth + 1);
        }
    }
    // Sometimes one entry a PHP reference to another (PHP writes R:).
    if (count($entries) >= 2 && mt_rand(0, 5) === 0) {
        [$from, $to] = array_rand($entries, 2);
        $entries[$to] = &$entries[$from];
        $shared = true;
    }
    return $entries;
}

function random_object(int $depth): object
{
    global $objects;
    $object = match (mt_rand(0, 3)) {
        0 => (object) ['a' => random_value($depth + 1), 'long_name' => random_value($depth + 1)],
        1 => new Account(random_value($depth + 1), random_value($depth + 1), random_value($depth + 1)),
        2 => new Pair(random_entries($depth, false)),
        default => new Raw(mt_rand(0, 1) ? random_bytes_string() : serialize(random_value($depth + 1))),
    };
    $objects[] = $object;
    return $object;
}

function random_value(int $depth): mixed
{
    global $shared, $objects;
    $leaf = $depth >= 3;
    switch (mt_rand(0, $leaf ? 6 : 11)) {
        case 0: return null;
        case 1: return (bool) mt_rand(0, 1);
        case 2: return random_int64();
        case 3: return random_float();
        case 4: return random_bytes_string();
        case 5: return random_text();
        case 6:
            $case = pick([Suit::Hearts, Suit::Spades, Pure::A, Pure::B]);
            $objects[] = $case;
            return $case;
        case 7: return random_entries($depth, true);
        case 8:
        case 9: return random_entries($depth, false);
        case 10: return random_object($depth);
        default:
            if ($objects === []) {
                return random_object($depth);
            }
            $shared = true;
            return pick($objects);
    }
}

/**
 * A variable name PHP keeps in this format (in `php`, not an int: session_encode()
 * would skip it), in UTF-8 (the JSON form's names are JSON strings).
 */
function random_name(string $format): string|int
{
    if ($format === 'php_serialize') {
        do {
            $name = random_key();
        } while (!is_utf8((string) $name));
        return $name;
    }
    $name = pick(['user', 'cart', '!flag', '{x', 'a:', '', 'ключ', 'x;y', 'sp ace', 'N;']) . (mt_rand(0, 1) ? (string) mt_rand(0, 9) : '');
    return is_numeric($name) ? "v$name" : $name;
}

$out = fopen($output, 'w');
for ($i = 0; $i < (int) $count; $i++) {
    $_SESSION = [];
    $shared = false;
    $objects = [];
    for ($n = mt_rand(0, 5); $n > 0; $n--) {
        $_SESSION[random_name($format)] = random_value(0);
    }
    // Enum cases are objects: the same case twice is one object written twice.
    $enums = array_filter($objects, static fn ($object) => $object instanceof UnitEnum);
    if (count($enums) !== count(array_unique(array_map(static fn ($case) => $case::class . $case->name, $enums)))) {
        $shared = true;
    }
    $json = $shared ? '-' : session_json($_SESSION);
    fwrite($out, base64_encode(encoded_session()) . ' ' . $json . "\n");
}
fclose($out);
