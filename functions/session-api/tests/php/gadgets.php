<?php
/**
 * Classes an attacker would aim at with PHP object injection: each leaves a
 * file named after the magic method in $GLOBALS['gadget_dir'] when PHP runs
 * it, so a test can tell whether unserializing a session ran attacker-chosen
 * code. Loaded by session.php when the script names a "gadgets" directory.
 */

function gadget_fired(string $method): void
{
    file_put_contents($GLOBALS['gadget_dir'] . '/' . $method, "fired\n");
}

/** `O:` with __wakeup and __destruct (the classic gadget). */
class Gadget
{
    public $cmd;

    public function __wakeup()
    {
        gadget_fired('Gadget.__wakeup');
    }

    public function __destruct()
    {
        gadget_fired('Gadget.__destruct');
    }
}

/** `O:` with __unserialize (PHP 7.4+). */
class UnserializeGadget
{
    public function __unserialize(array $data): void
    {
        gadget_fired('UnserializeGadget.__unserialize');
    }
}

/** `C:` through Serializable::unserialize (deprecated since 8.1, still run). */
class SerializableGadget implements Serializable
{
    public function serialize()
    {
        return '';
    }

    public function unserialize($data)
    {
        gadget_fired('SerializableGadget.unserialize');
    }
}

enum Suit: string
{
    case Hearts = 'H';
}
