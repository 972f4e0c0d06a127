"""Boot: find the board map, build its HAL, run the terminal.

On the device the board map is /board.json (deployed with the firmware);
the emulator names it in PAYTERM_BOARD. A boot that cannot even start the
application says why on the console instead of rebooting silently.
"""
import sys


def boot():
    from payterm import hal
    from payterm.app import main

    board = hal.read_board(hal.board_path())
    main(hal.load(board), board)


try:
    boot()
except KeyboardInterrupt:
    pass
except SystemExit:
    raise
except Exception as e:
    print("# FATAL SYS-09", repr(e))
    sys.print_exception(e)
    sys.exit(1)
