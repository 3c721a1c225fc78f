#!/usr/bin/env python3
"""Build the tiny example retrieval dataset shipped with negmine.

All texts below were written for negmine and are released under CC0 1.0.
The dataset is deliberately small (120 documents, 30 queries) and dense in
*hard negatives*: every topic holds several documents that are close in
subject but answer different questions.

Running this script writes, next to itself, into ``examples/tiny/``:

* ``corpus.parquet``  -- BEIR corpus: ``_id``, ``title``, ``text``
* ``queries.parquet`` -- BEIR queries: ``_id``, ``text``
* ``qrels.parquet``   -- BEIR qrels: ``query-id``, ``corpus-id``, ``score``
* ``pairs.parquet``   -- sentence-transformers pairs: ``anchor``, ``positive``

Output is deterministic: rows are sorted and the files are byte-identical
across runs with the same pyarrow version.

Usage::

    python examples/build_example.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT_DIR = Path(__file__).resolve().parent / "tiny"

# ---------------------------------------------------------------------------
# Corpus: (id, title, text). Ten documents per topic, twelve topics.
# ---------------------------------------------------------------------------
DOCS: list[tuple[str, str, str]] = [
    # --- coffee brewing -----------------------------------------------------
    ("d001", "Pour-over grind size",
     "For a pour-over cone, grind the beans to roughly the texture of coarse sand. "
     "If the water drains in under two minutes, go finer; if it stalls past four "
     "minutes, go coarser."),
    ("d002", "Water temperature for brewing",
     "Most coffee extracts well with water between 90 and 96 degrees Celsius. "
     "Boiling water straight off the kettle can taste harsh with dark roasts, so "
     "let it rest for about thirty seconds first."),
    ("d003", "Coffee to water ratio",
     "A good starting ratio is one gram of coffee for every sixteen grams of water. "
     "Weigh both on a kitchen scale instead of using scoops, because bean density "
     "varies between roasts."),
    ("d004", "French press steeping time",
     "In a French press, let the grounds steep for four minutes before pressing the "
     "plunger slowly. Pour the coffee out right away so it does not keep extracting "
     "and turn bitter."),
    ("d005", "Storing coffee beans",
     "Keep whole beans in an opaque, airtight container at room temperature. Avoid "
     "the refrigerator, where moisture and odors from other food can creep into the "
     "beans."),
    ("d006", "Why coffee tastes sour",
     "Sour, thin coffee usually means under-extraction. Try a finer grind, hotter "
     "water, or a longer brew time, changing only one variable at a time so you can "
     "tell what helped."),
    ("d007", "Cold brew basics",
     "Cold brew is made by soaking coarse grounds in cold water for twelve to "
     "eighteen hours, then filtering. The result is smooth and low in acidity and "
     "keeps in the fridge for about a week."),
    ("d008", "Descaling an espresso machine",
     "Hard water leaves mineral scale inside espresso machines. Run a citric acid "
     "descaling solution through the boiler every one to three months, then flush "
     "with plenty of clean water."),
    # Near-duplicate of d002 (case, whitespace and punctuation changes only).
    ("d009", "Water temperature for brewing",
     "most coffee extracts well with water between 90 and 96 degrees celsius.  "
     "Boiling water straight off the kettle can taste harsh with dark roasts so "
     "let it rest for about thirty seconds first"),
    ("d010", "Blooming the grounds",
     "Before the main pour, wet the grounds with about twice their weight in water "
     "and wait thirty seconds. This bloom lets trapped carbon dioxide escape so the "
     "water can extract evenly."),
    # --- bicycle maintenance ------------------------------------------------
    ("d011", "Fixing a flat tire",
     "To fix a flat, remove the wheel, lever one side of the tire off the rim, and "
     "pull out the tube. Find the hole by pumping air into it and listening, then "
     "patch it or fit a new tube."),
    ("d012", "Correct tire pressure",
     "Road tires usually run between 80 and 100 psi, while mountain bike tires often "
     "sit between 25 and 35 psi. Check the range printed on the tire sidewall and "
     "adjust for your weight."),
    ("d013", "Cleaning and lubing a chain",
     "Wipe the chain with a rag, scrub grime off with a degreaser, and let it dry. "
     "Then apply one drop of lube to each roller and wipe off the excess so it does "
     "not attract dirt."),
    ("d014", "Measuring chain wear",
     "Chains stretch as their pins and rollers wear. A chain checker tool tells you "
     "when elongation reaches 0.5 percent, which is the usual point to replace the "
     "chain before it damages the cassette."),
    ("d015", "Adjusting rim brakes",
     "If rim brakes feel spongy, tighten the cable using the barrel adjuster on the "
     "lever. Make sure the pads hit the rim squarely and never touch the tire."),
    ("d016", "Bleeding hydraulic disc brakes",
     "Hydraulic disc brakes that feel soft may have air in the lines. Bleeding them "
     "means pushing fresh fluid through the system with a syringe kit until no "
     "bubbles appear. Use only the fluid type the manufacturer specifies."),
    ("d017", "Tuning rear derailleur shifting",
     "When shifts to a larger cog hesitate, turn the barrel adjuster a quarter turn "
     "counterclockwise to add cable tension. If the chain overshoots, turn it back "
     "the other way."),
    ("d018", "Truing a wheel",
     "A wheel that wobbles side to side can be trued by tightening and loosening "
     "spokes with a spoke wrench. Make small quarter-turn adjustments and check the "
     "gap to the brake pad as you go."),
    ("d019", "Setting saddle height",
     "With the pedal at the bottom of its stroke, your knee should keep a slight "
     "bend. A saddle that is too low strains the knees, while one set too high "
     "makes your hips rock."),
    ("d020", "Preparing a bike for winter storage",
     "Before storing a bike for winter, clean it, lube the chain, and shift to the "
     "smallest cog to relax the derailleur spring. Store it indoors and pump up the "
     "tires now and then."),
    # --- sourdough baking ---------------------------------------------------
    ("d021", "Feeding a sourdough starter",
     "Feed your starter by discarding all but a spoonful, then adding equal weights "
     "of flour and water. At warm room temperature, a healthy starter should double "
     "within four to eight hours."),
    ("d022", "Starter not rising",
     "A sluggish starter is often too cold. Move it somewhere around 24 to 26 "
     "degrees Celsius, try some whole rye flour in the feed, and use filtered water "
     "if your tap water is heavily chlorinated."),
    ("d023", "The float test",
     "To check whether a starter is ready to bake with, drop a small spoonful into "
     "water. If it floats, it is full of gas and ready; if it sinks, wait an hour "
     "and test again."),
    ("d024", "Bulk fermentation signs",
     "Bulk fermentation is done when the dough has grown by roughly half, feels "
     "airy, and shows bubbles on the sides and surface. Time alone is unreliable "
     "because dough temperature changes everything."),
    ("d025", "Stretch and folds",
     "Instead of kneading, build strength with stretch and folds: grab one edge of "
     "the dough, stretch it up, and fold it over. Rotate the bowl and repeat on all "
     "four sides every thirty minutes."),
    ("d026", "Shaping a boule",
     "To shape a round loaf, pull the dough toward you on an unfloured counter so "
     "friction tightens the surface. A taut skin helps the loaf hold its shape and "
     "rise upward in the oven."),
    ("d027", "Baking in a Dutch oven",
     "Bake sourdough in a preheated Dutch oven at 250 degrees Celsius with the lid "
     "on for twenty minutes to trap steam. Then remove the lid, lower the heat, and "
     "bake until deeply browned."),
    ("d028", "Gummy crumb",
     "A gummy interior often comes from underproofed dough or slicing too soon. Let "
     "the loaf cool for at least an hour, since the crumb keeps setting as steam "
     "escapes."),
    ("d029", "Scoring the loaf",
     "Score the dough just before baking with a razor blade held at a shallow angle. "
     "One confident cut about a centimeter deep gives the loaf a controlled place to "
     "open, forming an ear."),
    ("d030", "Storing a starter in the fridge",
     "If you bake only on weekends, keep the starter in the refrigerator and feed it "
     "once a week. Take it out a day before baking and give it two feeds to wake it "
     "up."),
    # --- houseplants --------------------------------------------------------
    ("d031", "How often to water houseplants",
     "Water most houseplants when the top two or three centimeters of soil feel "
     "dry, rather than on a fixed schedule. Plants drink far less in winter, when "
     "light is weaker."),
    ("d032", "Yellow leaves and overwatering",
     "Yellowing lower leaves and soil that stays damp for days are classic signs of "
     "overwatering. Let the pot dry out, and check that the drainage hole is not "
     "blocked."),
    ("d033", "Root rot",
     "Root rot turns roots brown, mushy, and foul-smelling. Trim away the damaged "
     "roots with clean scissors and repot the plant in fresh, well-draining mix."),
    ("d034", "Low-light houseplants",
     "Snake plants, ZZ plants, and pothos tolerate dim rooms better than most. They "
     "grow slowly in low light but rarely die from it, as long as they are not "
     "overwatered."),
    ("d035", "Getting rid of fungus gnats",
     "Fungus gnats breed in constantly wet topsoil. Let the surface dry out between "
     "waterings and use yellow sticky traps to catch the tiny adult flies."),
    ("d036", "When to repot",
     "Repot a plant when roots circle the bottom of the pot or poke out of the "
     "drainage hole. Choose a pot only one size larger, because excess soil stays "
     "wet too long."),
    ("d037", "Fertilizing houseplants",
     "Feed houseplants with a diluted liquid fertilizer about once a month during "
     "spring and summer. Skip feeding in winter, when growth slows and unused salts "
     "build up in the soil."),
    ("d038", "Brown leaf tips",
     "Crispy brown tips often point to low humidity or salt buildup from tap water "
     "and fertilizer. Flush the soil with plenty of water every few months to wash "
     "out excess salts."),
    ("d039", "Propagating pothos",
     "Pothos is easy to propagate. Cut a stem just below a node, place it in a glass "
     "of water, and pot it up once the new roots are a few centimeters long."),
    ("d040", "Leggy plants",
     "Long, stretched stems with wide gaps between leaves mean the plant is reaching "
     "for light. Move it closer to a window and pinch back the tips to encourage "
     "bushier growth."),
    # --- home solar power ---------------------------------------------------
    ("d041", "Sizing a home solar system",
     "To size a rooftop system, divide your yearly electricity use in kilowatt-hours "
     "by the annual production of one kilowatt of panels in your area. The result "
     "is roughly the number of kilowatts you need."),
    ("d042", "Net metering",
     "With net metering, surplus electricity your panels send to the grid earns "
     "credits on your bill. Rules differ by utility, so check whether credits roll "
     "over from month to month."),
    ("d043", "Microinverters versus string inverters",
     "A string inverter converts power for a whole row of panels, so one shaded "
     "panel can drag down the rest. Microinverters sit under each panel and let "
     "every panel work independently."),
    ("d044", "Choosing a home battery",
     "When choosing a home battery, compare usable capacity in kilowatt-hours, "
     "continuous power output, and warranty cycles. Lithium iron phosphate batteries "
     "are popular for their long life and thermal stability."),
    ("d045", "Does solar work during a power outage",
     "Most grid-tied solar systems shut off during a blackout to protect line "
     "workers. To keep power on, you need a battery with an islanding inverter or a "
     "transfer switch."),
    ("d046", "Cleaning solar panels",
     "Rain washes off most dust, but panels under trees or near farms may need "
     "cleaning. Use a soft brush and plain water early in the morning, never a "
     "pressure washer."),
    ("d047", "Panel orientation and tilt",
     "In the northern hemisphere, panels facing south produce the most energy over a "
     "year. A tilt angle close to your latitude is a good default, though east and "
     "west roofs still work well."),
    ("d048", "Solar payback period",
     "The payback period is the installed cost, minus incentives, divided by yearly "
     "savings on electricity. Many households see payback within seven to twelve "
     "years."),
    ("d049", "Panel degradation",
     "Solar panels slowly lose output as they age, typically around half a percent "
     "per year. Most manufacturers guarantee at least 80 percent of original output "
     "after twenty-five years."),
    ("d050", "Monitoring solar production",
     "Most inverters come with an app that shows daily production. A sudden drop on "
     "a sunny day can reveal a tripped breaker, a failed panel, or heavy soiling."),
    # --- running training ---------------------------------------------------
    ("d051", "Building mileage safely",
     "Increase weekly running distance gradually, by around ten percent at most, "
     "and schedule an easier week every third or fourth week so your body can "
     "adapt."),
    ("d052", "Easy run pace",
     "Easy runs should feel conversational: you can speak full sentences without "
     "gasping. Most of a distance runner's weekly mileage belongs at this relaxed "
     "effort."),
    ("d053", "Interval training",
     "Intervals alternate hard efforts with recovery jogs, such as six repeats of "
     "800 meters with two minutes of jogging between. They build speed and raise "
     "the pace you can sustain."),
    ("d054", "Tempo runs",
     "A tempo run is a sustained effort, comfortably hard, held for twenty to forty "
     "minutes. It trains your body to clear lactate and hold a faster pace for "
     "longer."),
    ("d055", "Preventing shin splints",
     "Shin splints often come from ramping up mileage too fast or running only on "
     "hard surfaces. Build up slowly, rotate your shoes, and strengthen your "
     "calves."),
    ("d056", "Tapering before a marathon",
     "Cut training volume by about forty to sixty percent over the final two to "
     "three weeks before a marathon, while keeping some short faster sessions so "
     "your legs stay sharp."),
    ("d057", "Fueling during a long run",
     "For runs over ninety minutes, take in carbohydrates as you go, about 30 to 60 "
     "grams per hour from gels, chews, or sports drinks. Practice your fueling in "
     "training, not on race day."),
    ("d058", "When to replace running shoes",
     "Running shoes usually last about 500 to 800 kilometers. Replace them when the "
     "midsole feels flat or new aches appear, even if the upper still looks fine."),
    ("d059", "Improving running cadence",
     "Raising your cadence by five percent shortens your stride and can reduce "
     "impact on the knees. Use a metronome app to practice the new rhythm on easy "
     "runs."),
    ("d060", "Rest days",
     "Rest days are when the body repairs muscle and restocks energy. Taking at "
     "least one full day off per week lowers the risk of overuse injuries."),
    # --- python packaging ---------------------------------------------------
    ("d061", "What pyproject.toml is for",
     "pyproject.toml is the standard configuration file for Python projects. Its "
     "build-system table tells tools which backend to use, and its project table "
     "holds the name, version, and dependencies."),
    ("d062", "Building a wheel",
     "Run python -m build in the project directory to create both a source "
     "distribution and a wheel in the dist folder. The build frontend installs the "
     "backend in an isolated environment first."),
    ("d063", "Uploading to PyPI",
     "Upload your distributions with twine upload dist/*. Use an API token instead "
     "of a password, and try TestPyPI first to catch mistakes before publishing for "
     "real."),
    ("d064", "Editable installs",
     "An editable install, made with pip install -e ., links the installed package "
     "to your source tree, so code changes take effect without reinstalling."),
    ("d065", "Declaring optional dependencies",
     "Optional extras go in the optional-dependencies table of pyproject.toml. Users "
     "then install them with a bracket suffix, such as pip install yourpackage[docs]."),
    ("d066", "Console script entry points",
     "To give your package a command-line tool, add an entry to the project.scripts "
     "table mapping a command name to a function. pip creates the executable when "
     "the package is installed."),
    ("d067", "Version specifiers",
     "Dependency version specifiers like >=2.0,<3 let pip choose any compatible "
     "release. Avoid pinning exact versions in a library, because it makes conflicts "
     "with other packages more likely."),
    ("d068", "Including data files in a package",
     "Non-Python files such as templates or JSON schemas must be declared so the "
     "build backend puts them in the wheel. Then read them at runtime with "
     "importlib.resources instead of file paths."),
    ("d069", "Virtual environments",
     "Create an isolated environment with python -m venv .venv and activate it "
     "before installing packages. Each project then gets its own dependencies "
     "without touching the system Python."),
    ("d070", "The src layout",
     "In the src layout, package code lives in a src directory instead of the "
     "project root. This keeps tests from accidentally importing the uninstalled "
     "source tree."),
    # --- beekeeping ---------------------------------------------------------
    ("d071", "Inspecting a hive",
     "Inspect hives on warm, calm days around midday, when many foragers are out. "
     "Work slowly, puff smoke at the entrance first, and look for eggs as proof the "
     "queen is laying."),
    ("d072", "Spotting the queen",
     "The queen is longer than the workers, with a tapered abdomen and legs that "
     "splay outward. Spotting her is much easier if she is marked with a dot of "
     "paint."),
    ("d073", "Swarm prevention",
     "Colonies swarm when they feel crowded in spring. Adding space early and "
     "checking frames for queen cells every week helps you avoid losing half your "
     "bees."),
    ("d074", "Varroa mite monitoring",
     "Check varroa levels with an alcohol wash or sugar roll of about 300 bees. More "
     "than three mites per hundred bees usually means the colony needs treatment."),
    ("d075", "Harvesting honey",
     "Harvest only frames where the bees have capped at least 80 percent of the "
     "cells with wax, because uncapped honey may be too wet and can ferment."),
    ("d076", "Feeding bees sugar syrup",
     "Feed a thin one to one sugar syrup in spring to encourage comb building, and a "
     "thicker two to one syrup in autumn to help colonies store food for winter."),
    ("d077", "Overwintering a hive",
     "To help a colony through winter, leave enough honey, reduce the entrance to "
     "keep out mice, and provide top ventilation so condensation does not drip onto "
     "the cluster."),
    ("d078", "Choosing a hive type",
     "Langstroth hives use stacked boxes with removable frames and are the most "
     "common. Top bar hives keep everything at waist height but yield less honey."),
    ("d079", "Why bees use smoke",
     "Smoke masks the alarm pheromone that guard bees release and prompts many bees "
     "to fill up on honey, which makes the colony calmer during an inspection."),
    ("d080", "Protective gear",
     "A veil is the most important piece of protective gear, since stings near the "
     "eyes are the most dangerous. Many beekeepers add gloves and a light-colored "
     "suit."),
    # --- birdwatching -------------------------------------------------------
    ("d081", "Choosing binoculars",
     "For birdwatching, 8x42 binoculars are a popular all-round choice. The 8 is the "
     "magnification and 42 is the lens diameter in millimeters; larger lenses gather "
     "more light."),
    ("d082", "Identifying birds by song",
     "Learn a few common songs at a time, and link each to a phrase or rhythm. "
     "Recording apps can suggest species, but double-check them against what you "
     "see."),
    ("d083", "Best time of day to see birds",
     "Birds are most active in the first few hours after sunrise, when they feed and "
     "sing. Midday is often quiet, and evenings bring a second, smaller burst of "
     "activity."),
    ("d084", "Attracting birds to a garden",
     "Native shrubs, a shallow birdbath, and a mix of feeders draw more species to a "
     "yard. Keep feeders clean to prevent disease spreading among visiting birds."),
    ("d085", "Keeping a bird list",
     "Many birders keep a life list of every species seen. Logging sightings with "
     "date, place, and count in an online checklist also helps scientists track "
     "populations."),
    ("d086", "Field marks",
     "Field marks are features that separate similar species, such as wing bars, eye "
     "rings, or tail patterns. Note size and shape first, then look at markings."),
    ("d087", "Spring migration",
     "Spring migration in temperate regions peaks from April to May, when warblers "
     "and other songbirds pass through. Watch after nights with southerly winds for "
     "fresh arrivals."),
    ("d088", "Birding ethics",
     "Keep your distance from nests, avoid playing recordings to lure birds during "
     "breeding season, and stay on trails so you do not trample habitat."),
    ("d089", "Identifying hawks in flight",
     "Buteos like red-tailed hawks have broad wings and short fan-shaped tails and "
     "often soar in circles. Accipiters have shorter rounded wings and long tails "
     "and fly with quick flaps and glides."),
    ("d090", "Photographing birds",
     "For bird photography, a long lens and a fast shutter speed, around 1/1000 of a "
     "second, freeze movement. Focus on the eye and shoot with the sun at your "
     "back."),
    # --- knitting -----------------------------------------------------------
    ("d091", "Casting on",
     "The long-tail cast on gives a stretchy, neat edge that suits most projects. "
     "Leave a tail about three times the width of the piece before making the "
     "slipknot."),
    ("d092", "Knit versus purl",
     "The knit stitch and purl stitch are mirror images. Alternating rows of knit "
     "and purl makes stockinette fabric, while knitting every row makes garter "
     "stitch."),
    ("d093", "Knitting a gauge swatch",
     "Knit a swatch at least ten centimeters square and wash it before measuring. If "
     "you have more stitches than the pattern asks for, switch to larger needles."),
    ("d094", "Fixing a dropped stitch",
     "To rescue a dropped stitch, slide a crochet hook into the loose loop and pull "
     "each horizontal strand through it, one row at a time, until you reach the "
     "needle."),
    ("d095", "Choosing yarn weight",
     "Yarn weights range from lace to super bulky. Worsted weight is a good choice "
     "for beginners because stitches are easy to see and projects grow quickly."),
    ("d096", "Binding off",
     "To bind off, knit two stitches, then lift the first over the second and off "
     "the needle. Repeat to the end and pull the yarn through the final loop."),
    ("d097", "Ribbing",
     "Ribbing alternates knit and purl stitches in the same row, such as knit two, "
     "purl two. It pulls in and stretches, which makes it ideal for cuffs and hat "
     "brims."),
    ("d098", "Blocking finished knits",
     "Blocking means wetting a finished piece and pinning it to shape while it "
     "dries. It evens out the stitches and opens up lace patterns."),
    ("d099", "Reading a knitting chart",
     "Knitting charts are read from the bottom up. Right-side rows are read from "
     "right to left and wrong-side rows from left to right, with each square "
     "standing for one stitch."),
    ("d100", "Knitting in the round",
     "Circular needles or double-pointed needles let you knit tubes like hats and "
     "socks without seams. Take care not to twist the stitches when joining the "
     "round."),
    # --- tide pools ---------------------------------------------------------
    ("d101", "When to visit tide pools",
     "Visit tide pools during a low tide, ideally a negative tide, when the water "
     "drops below average. Arrive an hour before the lowest point and check a tide "
     "table first."),
    ("d102", "Tide pool etiquette",
     "Step only on bare rock, not on animals or seaweed, and put any rock you turn "
     "over back exactly as you found it. Never take live animals home."),
    ("d103", "Sea anemones",
     "Sea anemones are relatives of jellyfish that catch prey with stinging "
     "tentacles. When the tide goes out, many close up into a blob to hold in "
     "water."),
    ("d104", "Sea stars",
     "Sea stars move on hundreds of tiny tube feet and can regrow lost arms. They "
     "feed by pushing their stomach out of their body to digest mussels."),
    ("d105", "Staying safe on the rocks",
     "Wear shoes with good grip because algae makes wet rocks slippery. Never turn "
     "your back on the ocean, since sneaker waves can surge far up the shore."),
    ("d106", "Hermit crabs",
     "Hermit crabs protect their soft abdomens inside empty snail shells. As they "
     "grow, they search for larger shells and sometimes fight over the best ones."),
    ("d107", "Zones of the intertidal",
     "The shore is divided into zones by how long each is underwater. The high zone "
     "is exposed most of the day, while the low zone is uncovered only at the lowest "
     "tides."),
    ("d108", "Why tide pools are stressful habitats",
     "Tide pool animals face swings in temperature, salinity, and oxygen as the tide "
     "rises and falls. Only hardy species survive such rapid changes."),
    ("d109", "Sea urchins",
     "Purple sea urchins graze on algae and use their spines and strong teeth to "
     "carve shallow hollows in rock, where they shelter from waves."),
    ("d110", "Photographing tide pools",
     "Use a polarizing filter to cut glare off the water's surface so you can "
     "photograph the animals beneath it. Keep the camera low and steady."),
    # --- astronomy for beginners --------------------------------------------
    ("d111", "Choosing a first telescope",
     "A small Dobsonian reflector offers the most aperture for the money and is "
     "simple to set up. Aperture matters more than magnification for seeing faint "
     "objects."),
    ("d112", "Dark adaptation",
     "Your eyes need twenty to thirty minutes in darkness to fully adapt. Use a red "
     "flashlight to read charts, since white light resets your night vision."),
    ("d113", "Finding the North Star",
     "To find Polaris, follow the two stars at the end of the Big Dipper's bowl "
     "upward about five times their separation. Polaris marks the direction of due "
     "north."),
    ("d114", "Observing the planets",
     "Jupiter and Saturn are rewarding first targets. Even a small telescope shows "
     "Jupiter's four largest moons and the rings of Saturn on a steady night."),
    ("d115", "Light pollution",
     "Light pollution washes out faint galaxies and nebulae. Check a light pollution "
     "map to find a darker site, and observe when the Moon is not in the sky."),
    ("d116", "Stargazing with binoculars",
     "Ordinary binoculars are a great first instrument for the night sky. They show "
     "craters on the Moon, star clusters like the Pleiades, and the Andromeda Galaxy "
     "as a faint smudge."),
    ("d117", "Seeing meteor showers",
     "Meteor showers are best after midnight, when your side of Earth faces forward "
     "in its orbit. Lie back, look at a wide patch of sky, and give your eyes time "
     "to adapt."),
    ("d118", "Collimating a reflector",
     "Collimation aligns the mirrors of a reflector telescope. If stars look like "
     "smeared comets even when focused, adjust the primary mirror screws using a "
     "collimation cap."),
    ("d119", "Phases of the Moon",
     "The Moon's phases come from how much of its sunlit half we see as it orbits "
     "Earth. Craters look best near first quarter, when shadows along the "
     "terminator are long."),
    # Near-duplicate of d114 (case, whitespace and punctuation changes only).
    ("d120", "Observing the Planets",
     "Jupiter and Saturn are rewarding first targets.  even a small telescope shows "
     "jupiter's four largest moons, and the rings of Saturn on a steady night!"),
]

# Pairs of documents whose texts differ only in case, whitespace, punctuation.
NEAR_DUPLICATES: list[tuple[str, str]] = [("d002", "d009"), ("d114", "d120")]

# ---------------------------------------------------------------------------
# Queries: (id, text)
# ---------------------------------------------------------------------------
QUERIES: list[tuple[str, str]] = [
    ("q01", "How long should I steep coffee in a French press?"),
    ("q02", "What water temperature should I use to brew coffee?"),
    ("q03", "My coffee tastes sour, what should I change?"),
    ("q04", "How do I repair a punctured bike inner tube?"),
    ("q05", "When is it time to replace my bicycle chain?"),
    ("q06", "Why do my hydraulic disc brakes feel soft?"),
    ("q07", "What does it mean when my sourdough starter floats in water?"),
    ("q08", "Why is my sourdough starter not bubbling or rising?"),
    ("q09", "How can I tell when bulk fermentation is finished?"),
    ("q10", "Why is the inside of my sourdough bread gummy?"),
    ("q11", "What causes yellow leaves on a houseplant?"),
    ("q12", "Which houseplants can survive in a dark room?"),
    ("q13", "How do I get rid of tiny flies in my potting soil?"),
    ("q14", "Will my solar panels keep my lights on when the grid goes down?"),
    ("q15", "How many solar panels do I need for my house?"),
    ("q16", "Does shade on one panel reduce the output of the whole array?"),
    ("q17", "How much should I increase my weekly running mileage?"),
    ("q18", "How should I cut back training before a marathon?"),
    ("q19", "What should I eat during a long run?"),
    ("q20", "How do I add a command line tool to my Python package?"),
    ("q21", "How do I publish my Python package on PyPI?"),
    ("q22", "How do I include JSON files inside a Python wheel?"),
    ("q23", "How do I check my beehive for varroa mites?"),
    ("q24", "How can I stop my bee colony from swarming?"),
    ("q25", "When is honey ready to harvest from the hive?"),
    ("q26", "What do the numbers on binoculars like 8x42 mean?"),
    ("q27", "How can I tell which hawk I am looking at when it is flying?"),
    ("q28", "How do I fix a stitch that fell off my knitting needle?"),
    ("q29", "What is the best time to go tide pooling?"),
    ("q30", "What can I see in the night sky with a small telescope?"),
]

# ---------------------------------------------------------------------------
# Relevance judgements: (query-id, corpus-id, score)
#   2 = directly answers the query, 1 = partially relevant,
#   0 = judged NOT relevant (a tempting hard negative; never a positive).
# ---------------------------------------------------------------------------
QRELS: list[tuple[str, str, int]] = [
    ("q01", "d004", 2),
    ("q02", "d002", 2), ("q02", "d009", 2),
    ("q03", "d006", 2), ("q03", "d001", 1),
    ("q04", "d011", 2),
    ("q05", "d014", 2),
    ("q06", "d016", 2), ("q06", "d015", 0),
    ("q07", "d023", 2),
    ("q08", "d022", 2), ("q08", "d021", 1),
    ("q09", "d024", 2),
    ("q10", "d028", 2),
    ("q11", "d032", 2), ("q11", "d033", 1),
    ("q12", "d034", 2), ("q12", "d040", 0),
    ("q13", "d035", 2),
    ("q14", "d045", 2), ("q14", "d044", 1),
    ("q15", "d041", 2),
    ("q16", "d043", 2),
    ("q17", "d051", 2), ("q17", "d055", 1),
    ("q18", "d056", 2),
    ("q19", "d057", 2),
    ("q20", "d066", 2),
    ("q21", "d063", 2), ("q21", "d062", 1),
    ("q22", "d068", 2),
    ("q23", "d074", 2),
    ("q24", "d073", 2),
    ("q25", "d075", 2),
    ("q26", "d081", 2), ("q26", "d116", 0),
    ("q27", "d089", 2), ("q27", "d086", 1),
    ("q28", "d094", 2),
    ("q29", "d101", 2),
    ("q30", "d114", 2), ("q30", "d120", 2), ("q30", "d111", 1),
]


def _normalize(text: str) -> str:
    text = re.sub(r"[^\w\s]", "", text.lower())
    return " ".join(text.split())


def validate() -> None:
    """Sanity-check the inline data; raise AssertionError on any problem."""
    doc_ids = [d[0] for d in DOCS]
    assert len(doc_ids) == len(set(doc_ids)), "duplicate document ids"
    assert doc_ids == [f"d{i:03d}" for i in range(1, len(DOCS) + 1)], "doc ids not d001.."
    for did, title, text in DOCS:
        assert title.strip() and text.strip(), did
        n = len(text.split())
        assert 15 <= n <= 60, f"{did}: {n} words"

    query_ids = [q[0] for q in QUERIES]
    assert len(query_ids) == len(set(query_ids)), "duplicate query ids"
    assert query_ids == [f"q{i:02d}" for i in range(1, len(QUERIES) + 1)], "query ids not q01.."

    texts = {did: text for did, _, text in DOCS}
    for a, b in NEAR_DUPLICATES:
        assert texts[a] != texts[b], (a, b)
        assert _normalize(texts[a]) == _normalize(texts[b]), (a, b)

    keys = [(q, d) for q, d, _ in QRELS]
    assert len(keys) == len(set(keys)), "duplicate qrels rows"
    positives: dict[str, int] = {q: 0 for q in query_ids}
    for q, d, s in QRELS:
        assert q in positives, f"unknown query {q}"
        assert d in texts, f"unknown doc {d}"
        assert s in (0, 1, 2), (q, d, s)
        if s > 0:
            positives[q] += 1
    assert all(1 <= n <= 3 for n in positives.values()), positives
    assert sum(n >= 2 for n in positives.values()) >= 5, "too few multi-positive queries"
    assert sum(s == 0 for _, _, s in QRELS) == 3, "expected exactly 3 score-0 rows"


def build_tables() -> dict[str, pa.Table]:
    docs = sorted(DOCS)
    queries = sorted(QUERIES)
    qrels = sorted(QRELS)
    doc_text = {did: text for did, _, text in DOCS}
    query_text = dict(QUERIES)

    corpus = pa.table(
        {
            "_id": [d[0] for d in docs],
            "title": [d[1] for d in docs],
            "text": [d[2] for d in docs],
        },
        schema=pa.schema([("_id", pa.string()), ("title", pa.string()), ("text", pa.string())]),
    )
    queries_t = pa.table(
        {"_id": [q[0] for q in queries], "text": [q[1] for q in queries]},
        schema=pa.schema([("_id", pa.string()), ("text", pa.string())]),
    )
    qrels_t = pa.table(
        {
            "query-id": [r[0] for r in qrels],
            "corpus-id": [r[1] for r in qrels],
            "score": [r[2] for r in qrels],
        },
        schema=pa.schema(
            [("query-id", pa.string()), ("corpus-id", pa.string()), ("score", pa.int64())]
        ),
    )
    pos = [(q, d) for q, d, s in qrels if s > 0]  # already sorted by (query-id, corpus-id)
    pairs = pa.table(
        {
            "anchor": [query_text[q] for q, _ in pos],
            "positive": [doc_text[d] for _, d in pos],
        },
        schema=pa.schema([("anchor", pa.string()), ("positive", pa.string())]),
    )
    return {"corpus": corpus, "queries": queries_t, "qrels": qrels_t, "pairs": pairs}


def main() -> int:
    validate()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, table in build_tables().items():
        path = OUT_DIR / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd")
        print(f"wrote {path} ({table.num_rows} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
