import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "molecule"))
sys.path.insert(0, str(ROOT / ".build" / "collections"))
