"""The clinic's starting exercise library: the usual home exercises for sciatica and low back
pain, in our own words, in English and Canadian French.

:func:`load_library` creates or updates each exercise by its ``key``, so running it twice (or
after a clinic edited an exercise's wording, which it then restores) changes nothing the second
time. Exercises a clinic added itself (other keys) are left alone.

Nothing here is medical advice to a particular patient: the practitioner chooses what to assign
and sets the dose; the defaults are only the starting point shown on the form.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.exercises.models import Exercise

STOP_EN = "Stop and contact your physiotherapist if numbness, tingling or weakness in your leg gets worse."
STOP_FR = (
    "Arrêtez et communiquez avec votre physiothérapeute si l'engourdissement, les picotements ou la "
    "faiblesse dans votre jambe augmentent."
)


@dataclass(frozen=True)
class LibraryExercise:
    key: str
    name_en: str
    name_fr: str
    instructions_en: str
    instructions_fr: str
    cautions_en: str = STOP_EN
    cautions_fr: str = STOP_FR
    default_reps: int | None = None
    default_sets: int | None = None
    default_hold_seconds: int | None = None
    default_times_per_day: int = 1
    media_url: str | None = None


LIBRARY: tuple[LibraryExercise, ...] = (
    LibraryExercise(
        key="nerve_glide_seated",
        name_en="Nerve glide, seated",
        name_fr="Glissement neural, assis",
        instructions_en=(
            "Sit tall on a chair. Straighten the sore leg until you feel a light pull, and at the same "
            "time tip your head back. Then bend the knee and bring your chin down. Move slowly and "
            "smoothly; it should feel like a gentle stretch, never sharp."
        ),
        instructions_fr=(
            "Assoyez-vous bien droit sur une chaise. Allongez la jambe douloureuse jusqu'à sentir une "
            "légère tension, en inclinant la tête vers l'arrière. Puis pliez le genou et rentrez le "
            "menton. Bougez lentement; vous devez sentir un léger étirement, jamais une douleur vive."
        ),
        default_reps=10,
        default_sets=2,
        default_times_per_day=2,
    ),
    LibraryExercise(
        key="nerve_glide_lying",
        name_en="Nerve glide, lying on your back",
        name_fr="Glissement neural, couché sur le dos",
        instructions_en=(
            "Lie on your back and hold the back of the thigh of the sore leg with both hands, hip bent. "
            "Slowly straighten the knee until you feel a light pull, then bend it again. Keep the "
            "movement gentle and rhythmic."
        ),
        instructions_fr=(
            "Couchez-vous sur le dos et tenez l'arrière de la cuisse douloureuse à deux mains, hanche "
            "pliée. Allongez lentement le genou jusqu'à une légère tension, puis pliez-le de nouveau. "
            "Gardez un mouvement doux et régulier."
        ),
        default_reps=10,
        default_sets=2,
        default_times_per_day=2,
    ),
    LibraryExercise(
        key="hamstring_stretch",
        name_en="Hamstring stretch",
        name_fr="Étirement des ischio-jambiers",
        instructions_en=(
            "Lie on your back near a doorway and rest the heel of the leg to stretch on the wall, knee "
            "almost straight. Move closer to the wall until you feel a stretch behind the thigh. Breathe "
            "normally while you hold."
        ),
        instructions_fr=(
            "Couchez-vous sur le dos près d'un cadre de porte et appuyez le talon de la jambe à étirer "
            "au mur, genou presque droit. Rapprochez-vous du mur jusqu'à sentir un étirement derrière la "
            "cuisse. Respirez normalement pendant le maintien."
        ),
        default_reps=3,
        default_sets=1,
        default_hold_seconds=30,
    ),
    LibraryExercise(
        key="knee_to_chest",
        name_en="Knee to chest",
        name_fr="Genou à la poitrine",
        instructions_en=(
            "Lie on your back with both knees bent. Bring one knee toward your chest with your hands "
            "behind the thigh, hold, and lower it. Then the other knee. Keep your head on the floor."
        ),
        instructions_fr=(
            "Couchez-vous sur le dos, genoux pliés. Amenez un genou vers la poitrine en tenant "
            "l'arrière de la cuisse, maintenez, puis redescendez. Ensuite l'autre genou. Gardez la tête "
            "au sol."
        ),
        default_reps=5,
        default_sets=1,
        default_hold_seconds=20,
        default_times_per_day=2,
    ),
    LibraryExercise(
        key="prone_press_up",
        name_en="Prone press-up",
        name_fr="Extension sur les coudes, couché sur le ventre",
        instructions_en=(
            "Lie on your stomach with your hands under your shoulders. Push your upper body up, keeping "
            "your hips on the floor and your back relaxed, then lower slowly. Go only as high as is "
            "comfortable."
        ),
        instructions_fr=(
            "Couchez-vous sur le ventre, les mains sous les épaules. Poussez pour soulever le haut du "
            "corps en gardant les hanches au sol et le dos détendu, puis redescendez lentement. Montez "
            "seulement jusqu'où c'est confortable."
        ),
        cautions_en=STOP_EN + " Also stop if the pain moves further down your leg.",
        cautions_fr=STOP_FR + " Arrêtez aussi si la douleur descend plus bas dans la jambe.",
        default_reps=10,
        default_sets=1,
        default_times_per_day=3,
    ),
    LibraryExercise(
        key="piriformis_stretch",
        name_en="Glute and piriformis stretch",
        name_fr="Étirement du fessier et du piriforme",
        instructions_en=(
            "Lie on your back with both knees bent. Cross the ankle of the sore side over the other knee. "
            "Pull the lower thigh gently toward you until you feel a stretch deep in the buttock."
        ),
        instructions_fr=(
            "Couchez-vous sur le dos, genoux pliés. Croisez la cheville du côté douloureux sur l'autre "
            "genou. Tirez doucement la cuisse du dessous vers vous jusqu'à sentir un étirement profond "
            "dans la fesse."
        ),
        default_reps=3,
        default_sets=1,
        default_hold_seconds=30,
        default_times_per_day=2,
    ),
    LibraryExercise(
        key="foam_roll_glutes",
        name_en="Foam rolling of the glutes",
        name_fr="Rouleau de mousse pour les fessiers",
        instructions_en=(
            "Sit on a foam roller with the ankle of the sore side crossed over the other knee. Lean "
            "toward the sore buttock and roll slowly back and forth. Pause on tender spots, but avoid "
            "rolling on anything that sends pain down the leg."
        ),
        instructions_fr=(
            "Assoyez-vous sur un rouleau de mousse, la cheville du côté douloureux croisée sur l'autre "
            "genou. Penchez-vous vers la fesse douloureuse et roulez lentement d'avant en arrière. "
            "Faites une pause sur les points sensibles, sans rouler sur ce qui envoie de la douleur dans "
            "la jambe."
        ),
        default_hold_seconds=60,
        default_sets=1,
    ),
    LibraryExercise(
        key="abdominal_bracing",
        name_en="Abdominal bracing",
        name_fr="Gainage abdominal",
        instructions_en=(
            "Lie on your back with knees bent. Gently tighten your stomach muscles as if bracing for a "
            "light poke, without holding your breath or flattening your back hard. Hold, then relax."
        ),
        instructions_fr=(
            "Couchez-vous sur le dos, genoux pliés. Contractez doucement les muscles du ventre comme "
            "pour vous préparer à une petite poussée, sans bloquer votre respiration ni écraser le dos. "
            "Maintenez, puis relâchez."
        ),
        cautions_en="Keep breathing throughout. " + STOP_EN,
        cautions_fr="Continuez à respirer tout au long. " + STOP_FR,
        default_reps=10,
        default_sets=1,
        default_hold_seconds=10,
        default_times_per_day=2,
    ),
    LibraryExercise(
        key="bridge",
        name_en="Bridge",
        name_fr="Pont",
        instructions_en=(
            "Lie on your back with knees bent and feet flat. Tighten your stomach and buttocks, then lift "
            "your hips until your body makes a straight line from shoulders to knees. Hold, and lower "
            "slowly."
        ),
        instructions_fr=(
            "Couchez-vous sur le dos, genoux pliés, pieds à plat. Contractez le ventre et les fesses, "
            "puis soulevez les hanches jusqu'à former une ligne droite des épaules aux genoux. "
            "Maintenez, puis redescendez lentement."
        ),
        default_reps=10,
        default_sets=2,
        default_hold_seconds=5,
    ),
    LibraryExercise(
        key="bird_dog",
        name_en="Bird-dog",
        name_fr="Chien d'arrêt (bird-dog)",
        instructions_en=(
            "On hands and knees, keep your back level. Reach one arm forward and the opposite leg back, "
            "without letting your back sag or twist. Hold, return, and switch sides."
        ),
        instructions_fr=(
            "À quatre pattes, gardez le dos à plat. Allongez un bras vers l'avant et la jambe opposée "
            "vers l'arrière, sans creuser ni tourner le dos. Maintenez, revenez, puis changez de côté."
        ),
        default_reps=8,
        default_sets=2,
        default_hold_seconds=5,
    ),
    LibraryExercise(
        key="walking",
        name_en="Walking",
        name_fr="Marche",
        instructions_en=(
            "Walk at an easy pace on flat ground, in comfortable shoes. Start with a time you can manage "
            "without more leg pain afterwards and add a few minutes each week."
        ),
        instructions_fr=(
            "Marchez à un rythme facile sur un terrain plat, avec des chaussures confortables. Commencez "
            "par une durée qui n'augmente pas la douleur à la jambe après coup, et ajoutez quelques "
            "minutes chaque semaine."
        ),
        cautions_en="Stop and rest if leg pain builds while you walk. " + STOP_EN,
        cautions_fr="Arrêtez-vous et reposez-vous si la douleur à la jambe augmente en marchant. " + STOP_FR,
        default_sets=1,
        default_hold_seconds=600,
    ),
    LibraryExercise(
        key="pool_exercise",
        name_en="Pool walking and exercise",
        name_fr="Marche et exercices en piscine",
        instructions_en=(
            "In waist- to chest-deep water, walk forwards and backwards, then do gentle leg swings "
            "holding the side of the pool. The water takes weight off your back. Swimming is fine if "
            "it is comfortable."
        ),
        instructions_fr=(
            "Dans l'eau à la hauteur de la taille ou de la poitrine, marchez vers l'avant et vers "
            "l'arrière, puis faites de légers balancements de jambe en tenant le bord. L'eau allège le "
            "poids sur le dos. La nage convient si elle est confortable."
        ),
        default_sets=1,
        default_hold_seconds=600,
    ),
)

_COLUMNS = tuple(f.name for f in fields(LibraryExercise) if f.name != "key")


def load_library(session: Session) -> tuple[int, int]:
    """Create or update every exercise of :data:`LIBRARY` by ``key``; returns (created, updated),
    counting only rows that actually changed. Flushed, not committed."""
    existing = {e.key: e for e in session.scalars(select(Exercise).where(Exercise.key.in_([x.key for x in LIBRARY])))}
    created = updated = 0
    for entry in LIBRARY:
        exercise = existing.get(entry.key)
        if exercise is None:
            session.add(Exercise(key=entry.key, active=True, **{c: getattr(entry, c) for c in _COLUMNS}))
            created += 1
            continue
        changed = False
        for column in _COLUMNS:
            if getattr(exercise, column) != getattr(entry, column):
                setattr(exercise, column, getattr(entry, column))
                changed = True
        updated += changed
    session.flush()
    return created, updated
