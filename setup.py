"""Build hook: the model cards (`models/<variant>/*.yaml`, the repository's single source of the variants) are
copied into the package as `blitzmask_deploy/models/` when a wheel is built, so an installed package needs no
checkout. Everything else about the project is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CARDS = Path(__file__).resolve().parent / "models"


class BuildWithCards(build_py):
    """build_py that also ships the model cards inside the package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "blitzmask_deploy" / "models"
        for card in sorted(CARDS.glob("*/*.yaml")):
            destination = target / card.relative_to(CARDS)
            self.mkpath(str(destination.parent))
            self.copy_file(str(card), str(destination))


setup(cmdclass={"build_py": BuildWithCards})
